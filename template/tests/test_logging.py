import io
import json
import logging
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from app.core.logging import REDACTED, JsonFormatter, redact, request_id_var


def format_record(message: str, *args: object, **extra: object) -> dict[str, object]:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, message, args, None)
    for key, value in extra.items():
        setattr(record, key, value)
    parsed: dict[str, object] = json.loads(JsonFormatter().format(record))
    return parsed


def test_a_line_is_one_json_object_with_the_request_id() -> None:
    token = request_id_var.set("req-1")
    try:
        line = format_record("hello %s", "world", user_id=7)
    finally:
        request_id_var.reset(token)
    assert line["message"] == "hello world"
    assert line["request_id"] == "req-1"
    assert line["user_id"] == 7
    assert line["level"] == "INFO"


def test_time_is_utc_to_the_millisecond_and_extras_keep_their_order() -> None:
    record = logging.LogRecord("test", logging.INFO, __file__, 1, "event", None, None)
    record.created, record.msecs = 1_790_000_000.9876, 987.0  # as LogRecord cuts it
    record.zeta, record.alpha = 1, 2
    line = JsonFormatter().format(record)
    assert json.loads(line)["time"] == "2026-09-21T14:13:20.987+00:00"
    assert list(json.loads(line))[-2:] == ["zeta", "alpha"]


def test_a_value_json_cannot_encode_is_written_as_text() -> None:
    line = format_record("event", path=Path("/srv/x"), when=datetime(2026, 1, 2, tzinfo=UTC))
    assert (line["path"], line["when"]) == ("/srv/x", "2026-01-02 00:00:00+00:00")


@pytest.mark.parametrize("key", ["password", "new_password", "secret_key", "access_token", "Authorization", "api_key"])
def test_sensitive_keys_are_redacted(key: str) -> None:
    line = format_record("event", **{key: "hunter2-value"})
    assert line[key] == REDACTED
    assert "hunter2-value" not in json.dumps(line)


def test_nested_values_are_redacted() -> None:
    assert redact({"body": {"user": "a", "password": "p", "items": [{"token": "t"}]}}) == {
        "body": {"user": "a", "password": REDACTED, "items": [{"token": REDACTED}]}
    }


def test_secrets_in_a_message_are_redacted() -> None:
    line = format_record("GET /cb?token=abc123&x=1 password: hunter2")
    assert "abc123" not in str(line["message"])
    assert "hunter2" not in str(line["message"])


@pytest.fixture
def json_lines(client: TestClient) -> Iterator[Callable[[], list[dict[str, object]]]]:
    """What the app's loggers write, through the same JSON formatter, parsed line by line."""
    stream = io.StringIO()
    handler = logging.StreamHandler(stream)
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger()
    root.addHandler(handler)
    yield lambda: [json.loads(line) for line in stream.getvalue().splitlines()]
    root.removeHandler(handler)


def test_requests_are_logged_without_the_password(
    client: TestClient, json_lines: Callable[[], list[dict[str, object]]]
) -> None:
    password = "a-very-distinctive-password"
    client.post("/users", json={"username": "bob", "password": password})
    client.post("/auth/token", json={"username": "bob", "password": password + "-wrong"})
    client.post("/auth/token", json={"username": "bob", "password": password})
    lines = json_lines()
    assert any(line.get("message") == "POST /users 201" for line in lines)
    assert all("request_id" in line for line in lines if line["logger"] == "app.access")
    assert password not in json.dumps(lines)


def test_uvicorn_colour_copy_of_the_message_is_dropped() -> None:
    line = format_record("Started server process [%d]", 7, color_message="Started server process [\x1b[36m%d\x1b[0m]")
    assert line["message"] == "Started server process [7]"
    assert "color_message" not in line
