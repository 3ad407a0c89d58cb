"""Reads that wait for a connection together share one SELECT (app/db/batching.py, issue 16)."""

import asyncio
from collections.abc import Awaitable, Callable, Sequence
from datetime import UTC, datetime
from typing import Any, TypeVar

import psycopg
import pytest
from alembic import command
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import make_url

from app.api.deps import users_by_name
from app.core.middleware import database_unavailable
from app.db.batching import BatchedReads
from app.db.roles import libpq_url
from app.db.session import create_read_pool
from app.schemas.user import UserRead
from tests.conftest import alembic_config
from tests.test_errors import closed_port

pytestmark = pytest.mark.postgres

NAMES = ("alice", "bob", "carol", "dave", "erin")
T = TypeVar("T")  # not `def name[T]`: scripts/practices.py may parse this file on Python 3.11


@pytest.fixture
def users_url(pg_url: str) -> str:
    command.upgrade(alembic_config(pg_url), "head")
    with psycopg.connect(libpq_url(make_url(pg_url)), autocommit=True) as connection:
        for name in NAMES:
            connection.execute(
                "INSERT INTO users (username, password_hash, created_at) VALUES (%s, 'x', %s)",
                (name, datetime.now(UTC)),
            )
    return pg_url


Sent = list[list[str]]


@pytest.fixture
def sent(monkeypatch: pytest.MonkeyPatch) -> Sent:
    """The keys of every batched SELECT, in the order they reach PostgreSQL."""
    keys: Sent = []
    execute = AsyncConnection.execute

    async def recording(self: AsyncConnection[Any], query: Any, params: Any = None, **kwargs: Any) -> Any:
        if isinstance(params, dict) and "keys" in params:
            keys.append(list(params["keys"]))
        return await execute(self, query, params, **kwargs)

    monkeypatch.setattr(AsyncConnection, "execute", recording)
    return keys


async def with_pool(url: str, size: int, scenario: Callable[[AsyncConnectionPool[Any]], Awaitable[None]]) -> None:
    pool = create_read_pool(url, 1, None, size)
    assert pool is not None
    await pool.open(wait=True)
    try:
        # A read that never gets its answer fails the test instead of hanging it.
        await asyncio.wait_for(scenario(pool), 10)
    finally:
        await pool.close()


async def queued(reads: BatchedReads[T], *names: str) -> list[asyncio.Task[T | None]]:  # noqa: UP047
    tasks = [asyncio.create_task(reads.get(name)) for name in names]
    await asyncio.sleep(0.05)  # every read is now waiting for the pool
    return tasks


def usernames(users: Sequence[UserRead | None]) -> list[str | None]:
    return [user.username if user is not None else None for user in users]


def test_reads_waiting_for_the_pool_together_share_one_select(users_url: str, sent: Sent) -> None:
    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        reads = users_by_name(pool)
        held = await pool.getconn()  # the pool's only connection: the reads queue
        tasks = await queued(reads, "alice", "bob", "alice", "nobody")
        assert sent == [], "no SELECT may go while no connection is free"
        await pool.putconn(held)
        users = await asyncio.gather(*tasks)
        assert usernames(users) == ["alice", "bob", "alice", None]
        assert users[0] is not None
        assert users[0].created_at.tzinfo is not None
        assert sent == [["alice", "bob", "nobody"]], "one SELECT, each name once"

    asyncio.run(with_pool(users_url, 1, scenario))


def test_reads_that_come_while_the_batch_waits_for_the_pool_join_it(users_url: str, sent: Sent) -> None:
    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        reads = users_by_name(pool)
        held = await pool.getconn()
        tasks = []
        for name in ("alice", "bob", "carol"):
            tasks.append(asyncio.create_task(reads.get(name)))
            await asyncio.sleep(0.01)  # each in a later turn of the loop, while the batch waits
        await pool.putconn(held)
        assert usernames(await asyncio.gather(*tasks)) == ["alice", "bob", "carol"]
        assert sent == [["alice", "bob", "carol"]]

    asyncio.run(with_pool(users_url, 1, scenario))


def test_reads_started_in_the_same_turn_share_one_select_with_a_connection_free(users_url: str, sent: Sent) -> None:
    # The server starts the requests whose bytes came together in one turn of the event loop.
    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        reads = users_by_name(pool)
        assert usernames(await asyncio.gather(reads.get("alice"), reads.get("bob"))) == ["alice", "bob"]
        assert sent == [["alice", "bob"]]

    asyncio.run(with_pool(users_url, 2, scenario))


def test_reads_one_after_the_other_each_send_their_own_select(users_url: str, sent: Sent) -> None:
    # More than psycopg's prepare_threshold (5): the prepared statement answers as the first did.
    names = ["carol", "dave", "nobody", "erin"] * 2

    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        reads = users_by_name(pool)
        assert usernames([await reads.get(name) for name in names]) == [n if n != "nobody" else None for n in names]
        assert sent == [[name] for name in names]

    asyncio.run(with_pool(users_url, 2, scenario))


def test_a_read_never_takes_the_answer_of_a_select_sent_before_it_came(
    users_url: str, sent: Sent, monkeypatch: pytest.MonkeyPatch
) -> None:
    # The first SELECT has been answered but its batch has not finished when alice is deleted. A
    # read of alice that comes after the delete must not get that answer: it would let a deleted
    # user in.
    answered, finish = asyncio.Event(), asyncio.Event()
    fetchall = psycopg.AsyncCursor.fetchall

    async def held_back(self: psycopg.AsyncCursor[Any]) -> list[Any]:
        rows = await fetchall(self)
        if len(sent) == 1:
            answered.set()
            await finish.wait()
        return rows

    monkeypatch.setattr(psycopg.AsyncCursor, "fetchall", held_back)

    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        reads = users_by_name(pool)
        before = asyncio.create_task(reads.get("alice"))
        await answered.wait()
        async with await AsyncConnection.connect(libpq_url(make_url(users_url)), autocommit=True) as admin:
            await admin.execute("DELETE FROM users WHERE username = 'alice'")
        after = asyncio.create_task(reads.get("alice"))
        await asyncio.sleep(0.05)
        finish.set()
        assert usernames([await before, await after]) == ["alice", None]
        assert sent == [["alice"], ["alice"]]

    asyncio.run(with_pool(users_url, 2, scenario))


def test_cancelled_reads_leave_the_others_their_answers(users_url: str, sent: Sent) -> None:
    # alice opened the batch and reads for it: cancelled (the server's graceful shutdown timed
    # out), another task reads for the others. bob only waited: cancelled, nothing else changes.
    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        reads = users_by_name(pool)
        held = await pool.getconn()
        opener, joined, kept = await queued(reads, "alice", "bob", "carol")
        opener.cancel()
        joined.cancel()
        await pool.putconn(held)
        assert usernames([await kept]) == ["carol"]
        for gone in (opener, joined):
            with pytest.raises(asyncio.CancelledError):
                await gone
        assert sent == [["alice", "bob", "carol"]]

    asyncio.run(with_pool(users_url, 1, scenario))


def test_an_opener_cancelled_before_anyone_joined_leaves_no_batch_behind(users_url: str, sent: Sent) -> None:
    # Cancelled in its first turn, before it took a connection: a later read must not join a
    # batch that nobody will read.
    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        reads = users_by_name(pool)
        opener = asyncio.create_task(reads.get("alice"))
        await asyncio.sleep(0)
        opener.cancel()
        with pytest.raises(asyncio.CancelledError):
            await opener
        assert usernames([await asyncio.wait_for(reads.get("bob"), 3)]) == ["bob"]
        assert sent == [["bob"]]

    asyncio.run(with_pool(users_url, 2, scenario))


def test_a_batch_holds_at_most_max_keys_reads(users_url: str, sent: Sent) -> None:
    async def scenario(pool: AsyncConnectionPool[Any]) -> None:
        query = "SELECT username FROM users WHERE username = ANY(%(keys)s)"
        reads = BatchedReads(pool, query, lambda row: (row[0], row[0]), max_keys=2)
        held = await pool.getconn()
        tasks = await queued(reads, *NAMES)
        await pool.putconn(held)
        assert await asyncio.gather(*tasks) == list(NAMES)
        assert sorted(len(keys) for keys in sent) == [1, 2, 2]
        assert sorted(name for keys in sent for name in keys) == sorted(NAMES)

    asyncio.run(with_pool(users_url, 1, scenario))


def test_an_outage_reaches_every_read_of_the_batch() -> None:
    # Each request raises it, and each gets the middleware's 503 (tests/test_read_pool.py).
    url = f"postgresql+psycopg://nobody:nothing@127.0.0.1:{closed_port()}/none"

    async def scenario() -> list[BaseException | UserRead | None]:
        pool = create_read_pool(url, 1, None, 1)
        assert pool is not None
        await pool.open(wait=False)
        try:
            reads = users_by_name(pool)
            batch = asyncio.gather(*(reads.get(name) for name in NAMES[:3]), return_exceptions=True)
            outcomes = await asyncio.wait_for(batch, 10)
            # The failed batch is closed: the next read tries again, and fails in its turn.
            later = await asyncio.wait_for(asyncio.gather(reads.get("alice"), return_exceptions=True), 10)
            return [*outcomes, *later]
        finally:
            await pool.close()

    outcomes = asyncio.run(scenario())
    assert len(outcomes) == 4
    for outcome in outcomes:
        assert isinstance(outcome, Exception)
        assert database_unavailable(outcome), outcome
    # Each request its own exception: their tracebacks and contexts do not mix in the logs.
    assert len({id(outcome) for outcome in outcomes}) == 4
