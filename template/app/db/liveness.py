"""Pooled connections the server has closed are dropped at checkout, without a round trip.

SQLAlchemy's `pool_pre_ping` sends a `SELECT 1` before every checkout: a second round trip for a
request that runs one query. A connection closed by the server (an RDS failover or reboot, an
idle timeout, `pg_terminate_backend`, a rotation that ends old sessions) has, by the time it is
checked out, received the server's goodbye or at least its FIN: its socket reads as ready while
no query is running. A zero-timeout poll of the socket sees that for the cost of a system call;
the pool then replaces the connection (a `DisconnectionError` raised in a checkout listener,
sqlalchemy/pool/base.py `_ConnectionFairy._checkout`). A peer that vanished without a word
(no FIN) is not seen here: the query fails, SQLAlchemy invalidates the pool, and the request
gets the middleware's 503 with Retry-After.
"""

import select
from typing import Any

from sqlalchemy import Engine, event, exc

# Anything to read, or the peer gone: an idle PostgreSQL connection is sent nothing unless it
# LISTENs (this service does not), so both mean the server has ended the session. POLLRDHUP is
# Linux's (the image); on a developer's macOS the FIN still shows as POLLIN.
_CLOSED = (
    select.POLLIN | select.POLLPRI | select.POLLERR | select.POLLHUP | getattr(select, "POLLRDHUP", 0)
    if hasattr(select, "poll")
    else 0
)


def server_closed(dbapi_connection: Any) -> bool:
    """True if an idle psycopg connection has been closed by the server (or the client)."""
    if dbapi_connection.closed:
        return True
    poller = select.poll()
    poller.register(dbapi_connection.pgconn.socket, _CLOSED)
    return bool(poller.poll(0))


def drop_closed_connections_on_checkout(engine: Engine) -> None:
    if not hasattr(select, "poll"):  # Windows: a closed connection fails its query, then a 503
        return

    # Only a connection that has served a query and come back is polled: a new one may still have
    # bytes of its handshake (TLS) waiting, which its first query reads. The pool clears `info`
    # whenever it opens a connection anew.
    @event.listens_for(engine, "checkin")
    def _mark_used(_dbapi_connection: Any, record: Any) -> None:
        record.info["returned_to_pool"] = True

    @event.listens_for(engine, "checkout")
    def _replace_if_closed(dbapi_connection: Any, record: Any, _proxy: Any) -> None:
        if record.info.get("returned_to_pool") and server_closed(dbapi_connection):
            raise exc.DisconnectionError("the server closed the connection while it was in the pool")
