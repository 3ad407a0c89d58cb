"""Rate limits on the routes that cost a bcrypt hash or create an account (RUN-2).

The counting is the `limits` library's (moving window), in the storage that RATE_LIMIT_STORAGE_URI
names. `memory://` counts per pod: behind N replicas a client may make N times the limit, since
the load balancer spreads its requests. To share one count across replicas, point the URI at a
Redis (`redis://host:6379`, with the `redis` package added to requirements.in); nothing else
changes. docs/runbook.md says how to tell a 429 flood from an attack.
"""

import math
import time

from fastapi import HTTPException, Request, status
from limits import RateLimitItem, parse, storage, strategies


def client_address(request: Request) -> str:
    """The client's address as the load balancer saw it.

    The ALB appends the address of the peer it received the request from to X-Forwarded-For, so
    the last entry is the one a client cannot forge (earlier entries are whatever the client
    sent). The NetworkPolicy admits traffic only through the load balancer's path; without the
    header (a local run, a test) the peer address is the client.
    """
    forwarded = request.headers.get("x-forwarded-for", "")
    last = forwarded.rsplit(",", 1)[-1].strip()
    if last:
        return last
    return request.client.host if request.client else "unknown"


class RateLimiter:
    def __init__(self, storage_uri: str, **limits: str) -> None:
        # parse() refuses a malformed limit here, at startup, not on the first request.
        self.limits: dict[str, RateLimitItem] = {name: parse(value) for name, value in limits.items()}
        self._strategy = strategies.MovingWindowRateLimiter(storage.storage_from_string(storage_uri))

    def hit(self, name: str, *identifiers: str) -> None:
        """Count one request against the limit `name` for these identifiers; 429 once it is used up."""
        limit = self.limits[name]
        if self._strategy.hit(limit, name, *identifiers):
            return
        reset_at = self._strategy.get_window_stats(limit, name, *identifiers).reset_time
        retry_after = max(1, math.ceil(reset_at - time.time()))
        raise HTTPException(
            status.HTTP_429_TOO_MANY_REQUESTS,
            detail=f"Too many requests: at most {limit}, retry in {retry_after} s",
            headers={"Retry-After": str(retry_after)},
        )
