"""Engine and sessions. One engine per application, made from the settings."""

import logging
from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

from app.db.liveness import drop_closed_connections_on_checkout

logger = logging.getLogger(__name__)

# Per URL file, the credentials that last opened a connection in this process, whichever engine
# opened it (the app's or the readiness check's). Each entry is replaced whole: pools open
# connections from several threads.
LAST_GOOD_CREDENTIALS: dict[Path, dict[str, Any]] = {}


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
        credentials = {key: cparams.get(key) for key in ("user", "password", "host", "port", "dbname")}
        try:
            connection = dialect.connect(*cargs, **cparams)
        except dialect.loaded_dbapi.OperationalError as refused:
            previous = LAST_GOOD_CREDENTIALS.get(url_file, {})
            if not previous or previous == credentials:
                raise
            # Names the role and the failure, never a password (OPS-1).
            logger.warning(
                "database credentials in DATABASE_URL_FILE refused; connecting with the ones that last worked",
                extra={"database_user": credentials["user"], "error": type(refused).__name__},
            )
            try:
                connection = dialect.connect(*cargs, **{**cparams, **previous})
            except dialect.loaded_dbapi.OperationalError:
                raise refused from None
            return connection
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
