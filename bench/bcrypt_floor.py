"""How many checks of one bcrypt hash this machine makes per second with every core busy.

Run with the generated service's runtime virtualenv: `python bcrypt_floor.py ROUNDS SECONDS`.
Prints the rate. bcrypt releases the GIL while it hashes, so one thread per core keeps every core
busy, as concurrent logins would.
"""

import os
import sys
import threading
import time

import bcrypt

rounds, seconds = int(sys.argv[1]), float(sys.argv[2])
password = b"bench-password-0123456789"
hashed = bcrypt.hashpw(password, bcrypt.gensalt(rounds=rounds))
cores = len(os.sched_getaffinity(0))
counts = [0] * cores
deadline = time.perf_counter() + seconds


def work(index: int) -> None:
    while time.perf_counter() < deadline:
        assert bcrypt.checkpw(password, hashed)
        counts[index] += 1


started = time.perf_counter()
threads = [threading.Thread(target=work, args=(i,)) for i in range(cores)]
for thread in threads:
    thread.start()
for thread in threads:
    thread.join()
print(f"{sum(counts) / (time.perf_counter() - started):.2f}")
