"""Reads by key that share one SELECT while they wait for a connection (issue 16).

Every authenticated request reads its user. Under load every connection of the read pool is busy
and the requests queue for one; each then sent a SELECT of its own, a checkout and a round trip
per request, while the queue grew. Here the requests that wait at the same time wait together:
the first opens a batch, which waits for a connection; the requests that come meanwhile join it;
when the connection comes the batch closes, and its keys go in one `= ANY(...)` SELECT, the same
username asked twice sent once. The pattern is GraphQL's DataLoader, with one difference:
aiodataloader closes a batch at the end of an event-loop turn, which under a busy pool batches
little, where this one stays open for as long as it waits for the pool anyway.

What a request reads is as fresh as with a SELECT of its own: a batch closes before its SELECT is
sent, so no request takes the answer of a SELECT sent before it came (a user deleted before the
request came is not found). When a connection is free the batch holds one key and no wait is added.
"""

import asyncio
from collections.abc import Callable
from typing import Any

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app.db.session import read_connection


class _Batch[T]:
    __slots__ = ("waiters",)

    def __init__(self) -> None:
        self.waiters: list[tuple[str, asyncio.Future[T | None]]] = []


class BatchedReads[T]:
    """`get(key)`: the row whose key is `key`, made into a `T` by `build`, or None.

    `query` takes the keys as `%(keys)s`, a list, and `build` makes a row into its key and its
    value. A batch takes at most `max_keys` requests, so a queue of thousands is not one SELECT.
    """

    def __init__(
        self,
        pool: AsyncConnectionPool[AsyncConnection[Any]],
        query: str,
        build: Callable[[tuple[Any, ...]], tuple[str, T]],
        max_keys: int = 100,
    ) -> None:
        self._pool, self._query, self._build, self._max_keys = pool, query, build, max_keys
        self._open: _Batch[T] | None = None
        # The event loop keeps only a weak reference to a task: these keep the running batches.
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> T | None:
        batch = self._open
        if batch is None or len(batch.waiters) >= self._max_keys:
            batch = self._open = _Batch()
            task = asyncio.create_task(self._read(batch))
            self._running.add(task)
            task.add_done_callback(self._running.discard)
        answer: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
        batch.waiters.append((key, answer))
        # A request cancelled here cancels its own future only: the batch and the others go on.
        return await answer

    async def _read(self, batch: _Batch[T]) -> None:
        try:
            async with read_connection(self._pool) as connection:
                # Closed before the SELECT is sent: a request that comes from here on opens
                # another batch, whose SELECT will see what was committed before it came.
                if self._open is batch:
                    self._open = None
                keys = list(dict.fromkeys(key for key, _ in batch.waiters))
                cursor = await connection.execute(self._query, {"keys": keys})
                rows = await cursor.fetchall()
            found = dict(self._build(row) for row in rows)
        except BaseException as exc:
            if self._open is batch:
                self._open = None
            # Each request raises it (an outage is a 503 for each, app/core/middleware.py).
            for _, answer in batch.waiters:
                if not answer.done():
                    answer.set_exception(exc)
            if not isinstance(exc, Exception):  # cancelled, or the interpreter exiting
                raise
            return
        for key, answer in batch.waiters:
            if not answer.done():
                answer.set_result(found.get(key))
