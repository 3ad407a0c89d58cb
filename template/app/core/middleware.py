"""Request id, access log and error answers, as plain ASGI middleware: cheap on every request (OPS-1).

An exception that escapes a route is answered here, while the request id is still known: the
client gets it in the header and the body, and the error's log line carries it, so a report
("request 3f2a... failed") leads straight to the traceback.
"""

import asyncio
import json
import logging
import os
import re
import time

import psycopg
from psycopg_pool import PoolTimeout
from sqlalchemy.exc import DBAPIError, OperationalError
from sqlalchemy.exc import TimeoutError as PoolTimeoutError
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from app.core.logging import request_id_var

logger = logging.getLogger("app.access")
error_logger = logging.getLogger("app.errors")
# An incoming X-Request-ID is kept (so a trace crosses services) only if it is short and plain.
_VALID_REQUEST_ID = re.compile(r"^[A-Za-z0-9._-]{1,128}$")
# Kubernetes calls the probes every few seconds: their lines go to DEBUG, not to the day's logs.
_PROBE_PATHS = frozenset({"/health", "/ready"})
# A database failover or restart takes seconds; the readiness probe takes the pod out meanwhile.
RETRY_AFTER_S = 10


# PostgreSQL error classes that mean "not reachable now": connection exceptions (08), and a server
# shutting down or starting (57P01-57P03). A statement timeout, a deadlock or a missing table is a
# bug or a load problem to look at, not an outage: those stay 500.
_OUTAGE_SQLSTATES = ("08", "57P01", "57P02", "57P03")


def database_unavailable(exc: BaseException) -> bool:
    """The database could not be reached or dropped the connection: worth a retry, not a bug.

    From SQLAlchemy's engine, or straight from psycopg and its pool (the authenticated read,
    app/db/session.py `create_read_pool`).
    """
    # Every pooled connection busy, or none could be made in time: the client may retry.
    if isinstance(exc, PoolTimeoutError | PoolTimeout):
        return True
    if isinstance(exc, DBAPIError) and exc.connection_invalidated:
        return True
    if isinstance(exc, OperationalError):
        exc = exc.orig  # type: ignore[assignment]
    if isinstance(exc, psycopg.OperationalError):
        sqlstate = exc.sqlstate
        return sqlstate is None or sqlstate.startswith(_OUTAGE_SQLSTATES)  # None: no server answered
    return False


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = dict(scope["headers"]).get(b"x-request-id", b"").decode("latin-1")
        # 32 random hex digits, as uuid4().hex without building a UUID on every request.
        request_id = incoming if _VALID_REQUEST_ID.match(incoming) else os.urandom(16).hex()
        token = request_id_var.set(request_id)
        started = time.perf_counter()
        status_code = 500
        response_started = False

        async def send_with_id(message: Message) -> None:
            nonlocal status_code, response_started
            if message["type"] == "http.response.start":
                status_code = message["status"]
                response_started = True
                message["headers"] = [*message.get("headers", []), (b"x-request-id", request_id.encode())]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            # uvicorn cancels the requests still running when its graceful shutdown times out
            # (RUN-1). An answer the client can retry elsewhere, rather than a bare 500.
            if not response_started:
                await self._answer(send_with_id, 503, "Shutting down, retry", request_id, close=True)
            raise
        except Exception as exc:
            if response_started:  # too late to answer: the client sees a cut response
                error_logger.exception("error after the response started")
                raise
            await self._answer_error(exc, request_id, send_with_id)
        finally:
            level = logging.DEBUG if scope["path"] in _PROBE_PATHS else logging.INFO
            if logger.isEnabledFor(level):
                logger.log(
                    level,
                    "%s %s %s",
                    scope["method"],
                    scope["path"],
                    status_code,
                    extra={"status": status_code, "duration_ms": round((time.perf_counter() - started) * 1000, 2)},
                )
            request_id_var.reset(token)

    @classmethod
    async def _answer_error(cls, exc: Exception, request_id: str, send: Send) -> None:
        if database_unavailable(exc):
            # An outage is the client's cue to retry later, not a bug in the service.
            # One line, not a traceback: the driver's reason is what the person on call needs.
            reason = str(getattr(exc, "orig", None) or exc).splitlines()[0]
            error_logger.error("database unavailable", extra={"error": type(exc).__name__, "reason": reason})
            await cls._answer(send, 503, "Database unavailable, retry later", request_id)
        else:
            error_logger.error("unhandled error", exc_info=exc, extra={"error": type(exc).__name__})
            await cls._answer(send, 500, "Internal Server Error", request_id)

    @staticmethod
    async def _answer(send: Send, status_code: int, detail: str, request_id: str, close: bool = False) -> None:
        body = json.dumps({"detail": detail, "request_id": request_id}).encode()
        headers = [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())]
        if status_code == 503:
            headers.append((b"retry-after", str(RETRY_AFTER_S).encode()))
        if close:
            headers.append((b"connection", b"close"))
        await send({"type": "http.response.start", "status": status_code, "headers": headers})
        await send({"type": "http.response.body", "body": body})
