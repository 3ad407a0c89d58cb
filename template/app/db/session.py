"""Engine and sessions. One engine per application, made from the settings."""

import logging
import select
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import psycopg
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, create_engine, event, make_url

from app.db.liveness import drop_closed_connections_on_checkout, server_closed

logger = logging.getLogger(__name__)

# Per URL file, the credentials that last opened a connection in this process, whichever engine
# opened it (the app's or the readiness check's). Each entry is replaced whole: pools open
# connections from several threads.
LAST_GOOD_CREDENTIALS: dict[Path, dict[str, Any]] = {}
CREDENTIAL_KEYS = ("user", "password", "host", "port", "dbname")


def credentials_of(params: dict[str, Any]) -> dict[str, Any]:
    return {key: params.get(key) for key in CREDENTIAL_KEYS}


def last_good_instead_of(url_file: Path | None, refused: dict[str, Any], error: Exception) -> dict[str, Any] | None:
    """The credentials that last opened a connection from `url_file`, if they are not the refused ones."""
    previous = LAST_GOOD_CREDENTIALS.get(url_file, {}) if url_file is not None else {}
    if not previous or previous == refused:
        return None
    # Names the role and the failure, never a password (OPS-1).
    logger.warning(
        "database credentials in DATABASE_URL_FILE refused; connecting with the ones that last worked",
        extra={"database_user": refused["user"], "error": type(error).__name__},
    )
    return previous


def read_credentials_on_connect(engine: Engine, url_file: Path) -> None:
    """Every new connection takes its user, password, host and database from `url_file` as it is now.

    The file is the mounted `db-app-secret` Secret: after a rotation it holds the new password while
    the connections already in the pool, opened with the old one, keep working (RUN-2).

    A rotated role password reaches the file a minute or two before PostgreSQL has it: the db-roles
    init container of the next pod sets it (app/db/roles.py). Meanwhile the file's credentials are
    refused, so a connection they fail to open is retried once with the credentials that last opened
    one in this process. libpq gives no SQLSTATE for a refused connection (psycopg's error has
    `sqlstate` None, CONTRACTS.md), so the retry is made only when the file's credentials differ from
    those: in steady state a failure (the server down) is never tried twice.
    """

    @event.listens_for(engine, "do_connect")
    def _current_credentials(dialect: Any, _record: Any, cargs: Any, cparams: dict[str, Any]) -> Any:
        current = make_url(url_file.read_text(encoding="utf-8").strip())
        cparams.update(current.translate_connect_args(username="user", database="dbname"))
        credentials = credentials_of(cparams)
        try:
            connection = dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as refused:
            previous = last_good_instead_of(url_file, credentials, refused)
            if previous is None:
                raise
            try:
                return dialect.connect(*cargs, **{**cparams, **previous})
            except dialect.loaded_dbapi.OperationalError:
                raise refused from None
        LAST_GOOD_CREDENTIALS[url_file] = credentials
        return connection


def create_db_engine(database_url: str, connect_timeout_s: int, url_file: Path | None = None, **pool: int) -> Engine:
    """`pool` (pool_size, max_overflow, pool_timeout) sizes a PostgreSQL engine's connection pool."""
    url = make_url(database_url)
    # A database error's text would otherwise quote the statement's parameters (a username, a
    # password hash) into the error log line (OPS-1).
    if url.get_backend_name() == "sqlite":
        # FastAPI runs sync routes in a thread pool; SQLite must accept that.
        return create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False})
    # The connect timeout keeps /ready quick when the database is unreachable (K8S-1).
    engine = create_engine(url, hide_parameters=True, connect_args={"connect_timeout": connect_timeout_s}, **pool)
    if url_file is not None:
        read_credentials_on_connect(engine, url_file)
    # Connections RDS closed (failover, idle timeout) are replaced before a request uses them,
    # without pool_pre_ping's extra round trip on every checkout (app/db/liveness.py).
    drop_closed_connections_on_checkout(engine)
    return engine


# --- the asyncio pool of the authenticated read (issue 16) ------------------------------------


def create_read_pool(
    database_url: str, connect_timeout_s: int, url_file: Path | None, size: int
) -> AsyncConnectionPool[AsyncConnection[Any]] | None:
    """psycopg's own asyncio pool, for the read every authenticated request makes; None on SQLite.

    The engine's path costs a hop to the thread pool and SQLAlchemy's execution on each request:
    about half of its CPU (bench/run.py `me_cpu_us`). Here the query runs on the event loop. What
    the engine does, this pool does too: the credentials of every new connection come from
    `url_file` as it is now (rotation, RUN-2); TLS verification stays in the URL's query, which
    the file cannot change (app/db/tls.py); a connection the server closed is replaced at
    checkout without a round trip (`read_connection`, app/db/liveness.py). Not opened here: an asyncio pool belongs
    to the event loop that opens it (app/main.py, in the lifespan).
    """
    url = make_url(database_url)
    if url.get_backend_name() != "postgresql":
        return None

    # The URL's own user, password, host, port and database, which the file's replace, as the
    # engine's do_connect handler does; kept whole so that they compare with its LAST_GOOD_CREDENTIALS.
    from_url = url.translate_connect_args(username="user", database="dbname")

    def connect_args() -> dict[str, Any]:
        # Autocommit: one SELECT is sent alone, without a BEGIN before and a ROLLBACK after.
        args: dict[str, Any] = {"autocommit": True, "connect_timeout": connect_timeout_s, **from_url}
        if url_file is not None:
            current = make_url(url_file.read_text(encoding="utf-8").strip())
            args.update(current.translate_connect_args(username="user", database="dbname"))
        return args

    class RotatingConnection(AsyncConnection[Any]):
        """The engine's fallback (read_credentials_on_connect): the file's credentials refused, the
        ones that last opened a connection in this process are tried once, if they differ."""

        @classmethod
        async def connect(cls, conninfo: str = "", **kwargs: Any) -> "RotatingConnection":
            credentials = credentials_of(kwargs)
            try:
                connection = await super().connect(conninfo, **kwargs)
            except psycopg.OperationalError as refused:
                previous = last_good_instead_of(url_file, credentials, refused)
                if previous is None:
                    raise
                try:
                    return await super().connect(conninfo, **{**kwargs, **previous})
                except psycopg.OperationalError:
                    raise refused from None
            if url_file is not None:
                LAST_GOOD_CREDENTIALS[url_file] = credentials
            return connection

    async def settle(connection: AsyncConnection[Any]) -> None:
        # A new connection may still have bytes of its TLS handshake waiting (session tickets),
        # which the poll at checkout would take for the server's goodbye. One query reads them:
        # a round trip once per connection, and from then on every checkout can be polled.
        await connection.execute("SELECT 1")

    return AsyncConnectionPool(
        url.set(drivername="postgresql").render_as_string(hide_password=False),
        kwargs=connect_args,
        min_size=1,
        max_size=size,
        open=False,
        connection_class=RotatingConnection,
        configure=settle,
        # How long a request waits for a connection before the middleware answers 503 with
        # Retry-After: the connect timeout, as the engine's path fails on an unreachable database.
        # A request that joins a batched read late waits what remains of it (app/db/batching.py).
        timeout=max(connect_timeout_s, 1),
        # psycopg_pool retries a lost connection in the background with a doubling back-off for
        # `reconnect_timeout` (300 s by default), and while it does, requests cannot start a new
        # attempt: after a 60 s failover every authenticated request would stay a 503 for another
        # minute. Giving up after one connect timeout lets the next request try at once.
        reconnect_timeout=max(connect_timeout_s, 1) + 2,
        name="read",
    )


@asynccontextmanager
async def read_connection(pool: AsyncConnectionPool[AsyncConnection[Any]]) -> AsyncIterator[AsyncConnection[Any]]:
    """A connection of `pool` the server has not closed, as the engine's checkout listener gives one.

    Not the pool's `check` hook: after a failed check psycopg_pool waits a back-off (a second or
    more) before the next try, and after a failover every pooled connection fails it in turn.
    Here a closed one is dropped (the pool opens a replacement in the background) and the next is
    taken at once; once the pool is empty, the request waits for a new connection.
    """
    for _ in range(pool.max_size + 1):
        connection = await pool.getconn()
        # Windows has no poll(): a closed connection fails its query there, then a 503.
        if not hasattr(select, "poll") or not server_closed(connection):
            break
        await connection.close()
        await pool.putconn(connection)
    else:
        raise psycopg.OperationalError("every connection of the pool was closed by the server")
    try:
        yield connection
    finally:
        await pool.putconn(connection)
