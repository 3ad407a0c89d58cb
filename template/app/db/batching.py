"""Reads by key that share one SELECT: the requests that need one at the same time (issue 16).

Every authenticated request reads its user. Under load many requests are in flight at once, and
each sent a SELECT of its own: a checkout and a round trip per request. Here a request that finds
no batch open opens one, lets the event loop run the requests already started in the same turn
(they join it), then takes a connection; the requests that come while it waits for one join too.
When the connection comes the batch closes and its keys go in one `= ANY(...)` SELECT, a name
asked twice sent once; the request that opened the batch reads in its own task, and hands the
others their answers. The pattern is GraphQL's DataLoader (aiodataloader closes its batch at the
next turn of the loop too), without its cache.

What a request reads is as fresh as with a SELECT of its own: a batch closes before its SELECT is
sent, so no request takes the answer of a SELECT sent before it came (a user deleted before the
request came is not found).

What the group shares: one wait for the pool. A request that joins a batch late waits what
remains of the batch's wait (psycopg_pool's `timeout`) before the 503, not a whole timeout of
its own; under a pool that stays full that long, the 503 tells the client to retry later anyway.
If the request that opened a batch is cancelled (the server ends the requests still running when
its graceful shutdown times out; a client that goes away does not cancel its request), another
task reads for the others, from the back of the pool's queue.
"""

import asyncio
import contextvars
import copy
from collections.abc import Callable
from typing import Any, Generic, TypeVar

from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool

from app.db.session import read_connection

# A TypeVar rather than `class Name[T]` (hence the noqa UP046/UP047 below): the conformance report
# (scripts/practices.py) parses this file with whatever Python runs it, 3.11 included.
T = TypeVar("T")


class _Batch(Generic[T]):  # noqa: UP046
    __slots__ = ("waiters",)

    def __init__(self, key: str) -> None:
        # The request that opened the batch reads for it, and needs no future; the others do.
        self.waiters: list[tuple[str, asyncio.Future[T | None] | None]] = [(key, None)]


class BatchedReads(Generic[T]):  # noqa: UP046
    """`get(key)`: the row whose key is `key`, made into a `T` by `build`, or None.

    `query` takes the keys as `%(keys)s`, a list, and `build` makes a row into its key and its
    value. A batch takes at most `max_keys` requests, so a queue of thousands is not one SELECT.
    The answer to a key is the row whose key, as `build` gives it, is equal to it as a Python
    string: the key column needs a deterministic collation (PostgreSQL's default), or a row found
    under another spelling is no answer.
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
        # The event loop keeps only a weak reference to a task: these keep the ones started here.
        self._running: set[asyncio.Task[None]] = set()

    async def get(self, key: str) -> T | None:
        batch = self._open
        if batch is not None and len(batch.waiters) < self._max_keys:
            answer: asyncio.Future[T | None] = asyncio.get_running_loop().create_future()
            batch.waiters.append((key, answer))
            # A request cancelled here cancels its own future only: the batch and the others go on.
            return await answer
        # Nothing to join: this request opens a batch and reads for it in its own task (a task
        # started for the batch cost a read alone about a tenth more CPU).
        batch = self._open = _Batch(key)
        try:
            found = await self._read(batch)
        except asyncio.CancelledError:
            # Its request is gone (the server shutting down): the others still wait for an answer.
            self._read_in_a_task(batch)
            raise
        except BaseException as exc:
            _fail(batch, exc)
            raise
        _answer(batch, found)
        return found.get(key)

    async def _read(self, batch: _Batch[T]) -> dict[str, T]:
        try:
            # The event loop first runs the requests already started, which join the batch.
            await asyncio.sleep(0)
            async with read_connection(self._pool) as connection:
                # Closed before the SELECT is sent: a request that comes from here on opens
                # another batch, whose SELECT will see what was committed before it came.
                if self._open is batch:
                    self._open = None
                keys = list(dict.fromkeys(key for key, _ in batch.waiters))
                cursor = await connection.execute(self._query, {"keys": keys})
                rows = await cursor.fetchall()
        finally:
            # Failed or cancelled before its SELECT, the batch is closed all the same: a request
            # that came later must not join a batch that nobody reads.
            if self._open is batch:
                self._open = None
        return dict(self._build(row) for row in rows)

    def _read_in_a_task(self, batch: _Batch[T]) -> None:
        if all(answer is None or answer.done() for _, answer in batch.waiters):
            return

        async def read() -> None:
            try:
                found = await self._read(batch)
            except BaseException as exc:
                _fail(batch, exc)
                if not isinstance(exc, Exception):  # cancelled, or the interpreter exiting
                    raise
                return
            _answer(batch, found)

        # A context of its own: its log lines (psycopg_pool's) are not the cancelled request's.
        task = asyncio.create_task(read(), context=contextvars.Context())
        self._running.add(task)
        task.add_done_callback(self._running.discard)


def _answer(batch: _Batch[T], found: dict[str, T]) -> None:  # noqa: UP047
    for key, answer in batch.waiters:
        if answer is not None and not answer.done():
            answer.set_result(found.get(key))


def _fail(batch: _Batch[T], exc: BaseException) -> None:  # noqa: UP047
    # Each request raises it (an outage is a 503 for each, app/core/middleware.py), as a copy of
    # its own: raised in several requests, one exception would gather their tracebacks and
    # contexts, and the 500's log line of one would show the frames of another.
    for _, answer in batch.waiters:
        if answer is not None and not answer.done():
            answer.set_exception(_own_copy(exc))


def _own_copy(exc: BaseException) -> BaseException:
    try:
        mine = copy.copy(exc)
    except Exception:  # an exception that cannot be rebuilt from its arguments: shared, then
        return exc
    mine.__cause__, mine.__context__ = exc.__cause__, exc.__context__
    # Setting __cause__ set __suppress_context__: kept as the original's, so the copy's log line
    # shows "During handling of the above exception" exactly when the original's would.
    mine.__suppress_context__ = exc.__suppress_context__
    return mine.with_traceback(exc.__traceback__)
