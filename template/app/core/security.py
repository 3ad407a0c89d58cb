"""Password hashing with bcrypt and access tokens with PyJWT (SEC-2: no passlib, no python-jose)."""

import asyncio
import math
import os
import secrets
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import TypeVar

import bcrypt
import jwt

T = TypeVar("T")

# The algorithm is pinned: a token that claims another one, `none` included, is rejected.
JWT_ALGORITHM = "HS256"
# bcrypt hashes at most 72 bytes; bcrypt 5 raises on longer input instead of truncating.
BCRYPT_MAX_BYTES = 72


class InvalidTokenError(Exception):
    """The token is missing, expired, tampered with or not ours."""


def password_too_long(password: str) -> bool:
    return len(password.encode("utf-8")) > BCRYPT_MAX_BYTES


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    if password_too_long(password):
        return False
    return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))


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


class OverloadedError(Exception):
    """More passwords are waiting to be hashed than the pool can work through in time."""


class PasswordHasher:
    """bcrypt on a pool of threads of its own, as many as the CPU limit allows (RUN-2).

    bcrypt costs about 250 ms of CPU and releases the GIL. Run in the server's default thread pool,
    a flood of logins would take every thread and `/ready` would wait behind them until the probe
    times out; here the flood queues for the pool while the event loop and the probes stay free.
    The queue is bounded (`max_waiting` per worker): past it a request is refused at once with a
    503 the client may retry, instead of waiting longer than the load balancer would.
    """

    def __init__(self, rounds: int, workers: int | None = None, max_waiting: int = 8) -> None:
        self.rounds = rounds
        self.workers = workers or cpu_budget()
        self.capacity = self.workers * (1 + max_waiting)
        self._in_flight = 0
        self._pool = ThreadPoolExecutor(max_workers=self.workers, thread_name_prefix="bcrypt")
        # An unknown user's password is checked against this hash of the same cost, so that the
        # answer takes as long as for a wrong password and tells nothing about which names exist.
        # Made on the pool, so that it does not add a hash's time to every cold start.
        self._decoy = self._pool.submit(hash_password, secrets.token_urlsafe(32), rounds)

    async def _run(self, work: Callable[..., T], *args: object) -> T:
        # Only the event loop's thread counts, so the counter needs no lock.
        if self._in_flight >= self.capacity:
            raise OverloadedError
        self._in_flight += 1
        try:
            return await asyncio.get_running_loop().run_in_executor(self._pool, work, *args)
        finally:
            self._in_flight -= 1

    async def hash(self, password: str) -> str:
        return await self._run(hash_password, password, self.rounds)

    async def verify(self, password: str, password_hash: str | None) -> bool:
        """True only for a known user's right password; as slow for an unknown user (password_hash None)."""
        candidate = password_hash if password_hash is not None else await asyncio.wrap_future(self._decoy)
        matches = await self._run(verify_password, password, candidate)
        return matches and password_hash is not None

    def shutdown(self) -> None:
        self._pool.shutdown(wait=False, cancel_futures=True)


def create_access_token(subject: str, secret_key: str, expires_in: timedelta, *, issuer: str, audience: str) -> str:
    now = datetime.now(UTC)
    claims = {"sub": subject, "iat": now, "exp": now + expires_in, "iss": issuer, "aud": audience}
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, secret_key: str, *, issuer: str, audience: str) -> str:
    """The token's subject; raises InvalidTokenError on anything but a valid, unexpired token of ours."""
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[JWT_ALGORITHM],
            issuer=issuer,
            audience=audience,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    return str(claims["sub"])
