"""Rate limits on the routes that cost a bcrypt hash or create an account (RUN-2).

The counting is the `limits` library's sliding-window counter, asynchronous so that a slow shared
store never blocks the event loop. It keeps two counters a key, which the store drops once they
expire, in one cheap pass (limits/aio/storage/memory.py): a flood of distinct names or addresses
leaves no memory behind. (The moving window keeps every hit, and the synchronous memory store
every key it has seen.) The count is weighted across two fixed windows, so just after a window
turns, up to the previous window's share may pass again: a limit, not an exact quota.

RATE_LIMIT_STORAGE_URI names the store. `async+memory://` counts per pod: behind N replicas a
client may make N times the limit, since the load balancer spreads its requests. To share one
count across replicas, point it at a Redis (`async+redis://host:6379`, with the `coredis` package
added to requirements.in); nothing else changes. docs/runbook.md says how to read a 429 flood.
"""

import math
import time

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, parse
from limits.aio import strategies
from limits.storage import storage_from_string


def client_address(request: Request) -> str:
    """The client's address as the load balancer saw it.

    The ALB appends the address of the peer it received the request from to X-Forwarded-For, so
    the last entry is the one a client cannot forge from the internet (earlier entries, and
    earlier header lines, are whatever the client sent). A caller inside the VPC that reaches the
    pods without the ALB can still write it: the per-username limits do not depend on it.
    Without the header (a local run, a test) the peer address is the client.
    """
    forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
    last = forwarded.rsplit(",", 1)[-1].strip()
    if last:
        return last
    return request.client.host if request.client else "unknown"


class RateLimiter:
    def __init__(self, storage_uri: str, **limits: str) -> None:
        # parse() refuses a malformed limit here, at startup, not on the first request.
        self.limits: dict[str, RateLimitItem] = {name: parse(value) for name, value in limits.items()}
        self._strategy = strategies.SlidingWindowCounterRateLimiter(storage_from_string(storage_uri))

    async def _refuse(self, name: str, identifiers: tuple[str, ...]) -> None:
        limit = self.limits[name]
        reset_at = (await self._strategy.get_window_stats(limit, name, *identifiers)).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Too many requests: at most {limit}, retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )

    async def hit(self, name: str, *identifiers: str) -> None:
        """Count one request against the limit `name` for these identifiers; 429 once it is used up."""
        if not await self._strategy.hit(self.limits[name], name, *identifiers):
            await self._refuse(name, identifiers)

    async def count(self, name: str, *identifiers: str) -> None:
        """Count one event (a failed login) without refusing this request; `check` refuses the next."""
        await self._strategy.hit(self.limits[name], name, *identifiers)

    async def check(self, name: str, *identifiers: str) -> None:
        """429 if the limit is used up, without counting this request (failures are counted later)."""
        if not await self._strategy.test(self.limits[name], name, *identifiers):
            await self._refuse(name, identifiers)
