"""How many checks of one password hash this machine makes per second with every core busy.

Run with the generated service's runtime virtualenv:

    python hash_floor.py MEMORY_KIB TIME_COST PARALLELISM SECONDS

The hash is Argon2id with the service's default parameters (app/core/config.py), checked as a
login checks it. Prints the rate. argon2-cffi releases the GIL while it hashes, so one thread per
core keeps every core busy, as concurrent logins would.
"""

import os
import sys
import threading
import time

import argon2

memory_kib, time_cost, parallelism, seconds = (*map(int, sys.argv[1:4]), float(sys.argv[4]))
hasher = argon2.PasswordHasher(memory_cost=memory_kib, time_cost=time_cost, parallelism=parallelism)
password = "bench-password-0123456789"
hashed = hasher.hash(password)
cores = len(os.sched_getaffinity(0))
counts = [0] * cores
deadline = time.perf_counter() + seconds


def work(index: int) -> None:
    while time.perf_counter() < deadline:
        assert hasher.verify(hashed, password)
        counts[index] += 1


started = time.perf_counter()
threads = [threading.Thread(target=work, args=(i,)) for i in range(cores)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(f"{sum(counts) / (time.perf_counter() - started):.2f}")
