"""Password hashing with Argon2id and access tokens with PyJWT (SEC-2: no passlib, no python-jose).

New passwords are hashed with Argon2id (argon2-cffi) at the parameters of the OWASP Password
Storage Cheat Sheet. Hashes made by earlier releases with bcrypt still verify, and are replaced by
an Argon2id hash at the user's next successful login, the only moment the password is known.
"""

import asyncio
import contextlib
import math
import os
import secrets
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any, TypeVar

import argon2
import bcrypt
import jwt
from argon2.exceptions import VerifyMismatchError

T = TypeVar("T")

# The algorithm is pinned: a token that claims another one, `none` included, is rejected.
JWT_ALGORITHM = "HS256"
# bcrypt hashes at most 72 bytes; bcrypt 5 raises on longer input instead of truncating. While a
# user may still have a bcrypt hash, a longer password could never log them in: the API refuses
# it with a 422 (SEC-2).
BCRYPT_MAX_BYTES = 72
BCRYPT_PREFIXES = ("$2a$", "$2b$", "$2y$")
# OWASP Password Storage Cheat Sheet: Argon2id with at least 19 MiB of memory, 2 iterations and
# 1 degree of parallelism, or one of the rows it gives as equivalent (more iterations, less
# memory). Iterations -> the least memory in KiB; 5 iterations or more: the last row.
OWASP_ARGON2ID_MIN_MEMORY_KIB = {1: 47104, 2: 19456, 3: 12288, 4: 9216, 5: 7168}


class InvalidTokenError(Exception):
    """The token is missing, expired, tampered with or not ours."""


def password_too_long(password: str) -> bool:
    return len(password.encode("utf-8")) > BCRYPT_MAX_BYTES


def meets_owasp_minimum(memory_kib: int, time_cost: int) -> bool:
    return memory_kib >= OWASP_ARGON2ID_MIN_MEMORY_KIB[min(time_cost, 5)]


def is_bcrypt_hash(password_hash: str) -> bool:
    return password_hash.startswith(BCRYPT_PREFIXES)


def verify_password(argon2_hasher: argon2.PasswordHasher, password: str, password_hash: str) -> bool:
    """Whether `password` matches `password_hash`, an Argon2 hash or a bcrypt hash of an earlier release."""
    if is_bcrypt_hash(password_hash):
        secret = password.encode("utf-8")
        # A password over 72 bytes cannot be the one bcrypt hashed: it fails, after the same work.
        matches = bcrypt.checkpw(secret[:BCRYPT_MAX_BYTES], password_hash.encode("ascii"))
        return matches and len(secret) <= BCRYPT_MAX_BYTES
    try:
        return argon2_hasher.verify(password_hash, password)
    except VerifyMismatchError:
        return False


def argon2id(memory_kib: int, time_cost: int, parallelism: int) -> argon2.PasswordHasher:
    return argon2.PasswordHasher(
        time_cost=time_cost, memory_cost=memory_kib, parallelism=parallelism, type=argon2.Type.ID
    )


def cpu_budget(cgroup_cpu_max: Path = Path("/sys/fs/cgroup/cpu.max")) -> int:
    """Cores this process may use: the container's CPU limit (cgroup v2 `cpu.max`), else the CPUs it sees."""
    cores = len(os.sched_getaffinity(0))
    try:
        quota, period = cgroup_cpu_max.read_text().split()
        if quota != "max":
            cores = min(cores, math.ceil(int(quota) / int(period)))
    except (OSError, ValueError):
        pass
    return max(1, cores)


# Hashing threads run at a lower priority (nice 10) than the event loop and the request threads:
# when logins keep every core busy, the scheduler still gives the CPU to /ready, /health and the
# other routes first, and hashing takes what is left (RUN-2). Linux keeps a nice value per thread.
HASH_THREAD_NICENESS = 10


def _yield_to_requests() -> None:
    thread = threading.get_native_id()
    # Not permitted (a sandbox without setpriority): hashing keeps the normal priority, on its own pool.
    with contextlib.suppress(OSError):
        os.setpriority(os.PRIO_PROCESS, thread, min(19, os.getpriority(os.PRIO_PROCESS, thread) + HASH_THREAD_NICENESS))


class OverloadedError(Exception):
    """More passwords are waiting to be hashed than the pool can work through in time."""


class PasswordHasher:
    """Argon2id on a pool of threads of its own, as many as the CPU limit allows (RUN-2).

    A hash costs tens of milliseconds of CPU (and `memory_kib` of memory) and releases the GIL. Run
    in the server's default thread pool, a flood of logins would take every thread and `/ready`
    would wait behind them until the probe times out; here the flood queues for the pool while the
    event loop and the probes stay free. The queue is bounded (`max_waiting` per worker). A request
    that finds it full waits up to `max_wait_s` for a place, then is refused with a 503 the client
    may retry: a burst is absorbed, and a flood of clients that retry at once is held at one
    refusal per client and `max_wait_s` instead of keeping the event loop busy answering 503s.
    """

    def __init__(
        self,
        argon2id: argon2.PasswordHasher,
        *,
        workers: int | None = None,
        max_waiting: int = 8,
        max_wait_s: float = 1.0,
    ) -> None:
        self._argon2 = argon2id
        self.workers = workers or cpu_budget()
        self.capacity = self.workers * (1 + max_waiting)
        self.max_wait_s = max_wait_s
        self._places = asyncio.Semaphore(self.capacity)
        self._pool = ThreadPoolExecutor(
            max_workers=self.workers, thread_name_prefix="password-hash", initializer=_yield_to_requests
        )
        # An unknown user's password is checked against this hash of the same parameters, so that
        # the answer takes as long as for a wrong password and tells nothing about which names
        # exist. Made on the pool, so that it does not add a hash's time to every cold start.
        self._decoy = self._pool.submit(self._argon2.hash, secrets.token_urlsafe(32))

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        if self._places.locked():  # the queue is full: wait a while for a place
            try:
                await asyncio.wait_for(self._places.acquire(), self.max_wait_s)
            except TimeoutError:
                raise OverloadedError from None
        else:
            await self._places.acquire()  # a free place: taken without a suspension
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._places.release()

    async def hash(self, password: str) -> str:
        return await self._run(self._argon2.hash, password)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """True only for a known user's right password; as slow for an unknown user (password_hash None)."""
        candidate = password_hash if password_hash is not None else await asyncio.wrap_future(self._decoy)
        matches = await self._run(verify_password, self._argon2, password, candidate)
        return matches and password_hash is not None

    def needs_rehash(self, password_hash: str) -> bool:
        """A bcrypt hash, or an Argon2 one made with other parameters: replace it while the password is known."""
        return is_bcrypt_hash(password_hash) or self._argon2.check_needs_rehash(password_hash)

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def create_access_token(subject: str, secret_key: str, expires_in: timedelta, *, issuer: str, audience: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": subject, "iat": now, "exp": now + expires_in, "iss": issuer, "aud": audience}
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM)


def decode_access_claims(token: str, secret_key: str, *, issuer: str, audience: str) -> dict[str, Any]:
    """The token's claims; raises InvalidTokenError on anything but a valid, unexpired token of ours."""
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            secret_key,
            algorithms=[JWT_ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    return claims


def decode_access_token(token: str, secret_key: str, *, issuer: str, audience: str) -> str:
    """The token's subject; raises InvalidTokenError on anything but a valid, unexpired token of ours."""
    return str(decode_access_claims(token, secret_key, issuer=issuer, audience=audience)["sub"])


class VerifiedTokens:
    """`decode_access_token` with the tokens it has verified remembered, at most `max_entries`, LRU.

    Verifying a token (HMAC, then every claim) was a tenth of an authenticated request's CPU; a
    client sends the same token with each request until it expires. A remembered token is taken
    as valid until its own `exp`, and at most `max_age_s` after it was verified; it is then checked
    in full again. Only tokens that passed are kept: a forged or expired one costs a full check
    every time and takes no place. What the cache does not change: a token is valid until its
    `exp` either way (this service keeps no list of revoked tokens), a new SECRET_KEY takes a
    restart that empties the cache, and the user the token names is read from the database on
    every request, so a deleted user is refused at once (SEC-2).

    Used from the event loop only (an `async def` dependency): no lock.
    """

    # A busy client's token is checked in full once a minute, not on each of its requests.
    max_age_s = 60.0

    def __init__(
        self,
        secret_key: str,
        *,
        issuer: str,
        audience: str,
        max_entries: int = 4096,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self._secret_key, self._issuer, self._audience = secret_key, issuer, audience
        self._max_entries, self._clock = max_entries, clock
        # token -> (subject, until when it may be taken without a check)
        self._verified: OrderedDict[str, tuple[str, float]] = OrderedDict()

    def __len__(self) -> int:
        return len(self._verified)

    def subject(self, token: str) -> str:
        """The token's subject; raises InvalidTokenError as decode_access_token does."""
        now = self._clock()
        known = self._verified.get(token)
        if known is not None:
            if now < known[1]:
                self._verified.move_to_end(token)
                return known[0]
            del self._verified[token]
        claims = decode_access_claims(token, self._secret_key, issuer=self._issuer, audience=self._audience)
        subject = str(claims["sub"])
        self._verified[token] = (subject, min(float(claims["exp"]), now + self.max_age_s))
        if len(self._verified) > self._max_entries:
            self._verified.popitem(last=False)
        return subject
