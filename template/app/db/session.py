"""Engine and sessions. One engine per application, made from the settings."""

from pathlib import Path
from typing import Any

from sqlalchemy import Engine, create_engine, event, make_url

from app.db.liveness import drop_closed_connections_on_checkout


def read_credentials_on_connect(engine: Engine, url_file: Path) -> None:
    """Every new connection takes its user, password, host and database from `url_file` as it is now.

    The file is the mounted `db-secret` Secret: after a rotation it holds the new password while
    the connections already in the pool, opened with the old one, keep working (RUN-2).
    """

    @event.listens_for(engine, "do_connect")
    def _current_credentials(_dialect: Any, _record: Any, _args: Any, cparams: dict[str, Any]) -> None:
        current = make_url(url_file.read_text(encoding="utf-8").strip())
        cparams.update(current.translate_connect_args(username="user", database="dbname"))


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
