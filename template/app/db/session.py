"""Engine and sessions. One engine per application, made from the settings."""

from sqlalchemy import Engine, create_engine, make_url


def create_db_engine(database_url: str, connect_timeout_s: int, **pool: int) -> Engine:
    """`pool` (pool_size, max_overflow, pool_timeout) sizes a PostgreSQL engine's connection pool."""
    url = make_url(database_url)
    # A database error's text would otherwise quote the statement's parameters (a username, a
    # password hash) into the error log line (OPS-1).
    if url.get_backend_name() == "sqlite":
        # FastAPI runs sync routes in a thread pool; SQLite must accept that.
        return create_engine(url, hide_parameters=True, connect_args={"check_same_thread": False})
    # pool_pre_ping drops connections RDS closed (failover, idle timeout) before a request uses them;
    # the connect timeout keeps /ready quick when the database is unreachable (K8S-1).
    return create_engine(
        url, hide_parameters=True, pool_pre_ping=True, connect_args={"connect_timeout": connect_timeout_s}, **pool
    )
