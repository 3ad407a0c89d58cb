"""An error keeps its request id: in the answer's header and body, and on its log line (OPS-1)."""

import asyncio
import io
import json
import logging
import socket
from collections.abc import Callable, Iterator
from contextlib import contextmanager

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient
from starlette.types import Message, Receive, Scope, Send

from app.core.logging import JsonFormatter
from app.core.middleware import RequestContextMiddleware
from app.main import create_app
from tests.conftest import make_settings


def closed_port() -> int:
    """A loopback port nothing listens on: connections to it are refused at once."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
    return port


@contextmanager
def logged(app: FastAPI) -> Iterator[tuple[TestClient, Callable[[], list[dict[str, object]]]]]:
    """A client of ``app`` and the JSON lines its loggers write (create_app configured them first)."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    try:
        with TestClient(app) as client:
            yield client, lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    finally:
        root.removeHandler(handler)


def errors_of(lines: list[dict[str, object]], request_id: str) -> list[dict[str, object]]:
    return [line for line in lines if line["level"] == "ERROR" and line.get("request_id") == request_id]


def test_database_outage_is_503_with_retry_after_and_the_request_id() -> None:
    url = f"postgresql+psycopg://nobody:nothing@127.0.0.1:{closed_port()}/none"
    with logged(create_app(make_settings(url))) as (client, log_lines):
        response = client.post("/users", json={"username": "alice", "password": "long enough password"})
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    request_id = response.headers["x-request-id"]
    assert response.json() == {"detail": "Database unavailable, retry later", "request_id": request_id}
    errors = errors_of(log_lines(), request_id)
    assert errors, f"no ERROR line carries request id {request_id}"
    assert errors[0]["error"] == "OperationalError"
    assert "refused" in str(errors[0]["reason"]), errors[0]


def test_unexpected_error_is_json_500_with_the_request_id(app: FastAPI) -> None:
    def fail() -> None:
        raise RuntimeError("something the code did not expect")

    app.add_api_route("/fail", fail)
    with logged(app) as (client, log_lines):
        response = client.get("/fail", headers={"X-Request-ID": "trace-500"})
    assert response.status_code == 500
    assert response.headers["x-request-id"] == "trace-500"
    assert response.json() == {"detail": "Internal Server Error", "request_id": "trace-500"}
    errors = errors_of(log_lines(), "trace-500")
    assert errors, "the error's log line has no request id"
    assert "something the code did not expect" in str(errors[0]["exception"])
    access = [line for line in log_lines() if line["logger"] == "app.access" and line.get("request_id") == "trace-500"]
    assert [line["status"] for line in access] == [500]


def test_a_missing_table_is_a_bug_not_an_outage(tmp_path) -> None:  # type: ignore[no-untyped-def]
    # SQLite raises OperationalError for "no such table": a 503 would send clients to retry a bug.
    app = create_app(make_settings(f"sqlite:///{tmp_path / 'never-migrated.db'}"))
    with logged(app) as (client, _):
        response = client.post("/users", json={"username": "alice", "password": "long enough password"})
    assert response.status_code == 500, response.text
    assert "retry-after" not in response.headers


def test_a_request_cancelled_at_shutdown_gets_a_503_with_its_request_id() -> None:
    """uvicorn cancels the requests still running when its graceful shutdown times out (RUN-1)."""

    async def cancelled(scope: Scope, receive: Receive, send: Send) -> None:
        raise asyncio.CancelledError

    sent: list[Message] = []

    async def send(message: Message) -> None:
        sent.append(message)

    async def receive() -> Message:
        return {"type": "http.request", "body": b""}

    scope = {"type": "http", "method": "POST", "path": "/auth/token", "headers": [(b"x-request-id", b"trace-503")]}
    with pytest.raises(asyncio.CancelledError):
        asyncio.run(RequestContextMiddleware(cancelled)(scope, receive, send))
    start, body = sent
    headers = dict(start["headers"])
    assert start["status"] == 503
    assert headers[b"x-request-id"] == b"trace-503"
    assert headers[b"connection"] == b"close"
    assert json.loads(body["body"]) == {"detail": "Shutting down, retry", "request_id": "trace-503"}
