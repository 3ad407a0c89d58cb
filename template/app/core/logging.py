"""JSON logs on stdout, one object a line, with the request id and secrets redacted (OPS-1).

`logging.json` holds the configuration: the application and Alembic's env.py load it here, and
`make run` hands the same file to uvicorn (`--log-config`), so its reloader process, which never
imports the application, writes the same lines.
"""

import json
import logging
import logging.config
import re
from contextvars import ContextVar
from datetime import UTC, datetime
from functools import lru_cache
from pathlib import Path
from typing import Any

request_id_var: ContextVar[str | None] = ContextVar("request_id", default=None)

REDACTED = "[REDACTED]"
# A key whose name contains one of these never has its value logged.
_SENSITIVE_KEY = re.compile(r"pass(word|wd)?|secret|token|authori[sz]ation|api[-_]?key|cookie|credential", re.I)
# `password=...` or `"token": "..."` inside a free-text message.
_SENSITIVE_PAIR = re.compile(
    r"""(?P<key>["']?[\w-]*(?:pass(?:word|wd)?|secret|token|authori[sz]ation|api[-_]?key)[\w-]*["']?\s*[=:]\s*)"""
    r"""(?P<value>"[^"]*"|'[^']*'|[^\s&,;]+)""",
    re.I,
)
# Attributes every LogRecord has; anything else was passed with `extra=`. uvicorn adds
# `color_message`, the message again with terminal colours, which a JSON line does not want.
_RECORD_ATTRS = frozenset(vars(logging.LogRecord("", 0, "", 0, "", None, None))) | {
    "message",
    "asctime",
    "taskName",
    "color_message",
}


@lru_cache(maxsize=4096)
def is_sensitive_key(key: str) -> bool:
    # Cached: a service logs the same few dozen keys over and over (status, duration_ms...).
    return bool(_SENSITIVE_KEY.search(key))


def redact(value: Any, key: str = "") -> Any:
    """Replace the value of any sensitive key, however deep it is nested."""
    if key and is_sensitive_key(key):
        return REDACTED
    if isinstance(value, dict):
        return {k: redact(v, str(k)) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [redact(v) for v in value]
    return value


def redact_text(text: str) -> str:
    if "=" not in text and ":" not in text:  # every pattern needs one: most lines skip the regex
        return text
    return _SENSITIVE_PAIR.sub(lambda m: m.group("key") + REDACTED, text)


# One encoder for every line: `json.dumps` with arguments builds a new one on each call.
_encode = json.JSONEncoder(default=str, ensure_ascii=False).encode


@lru_cache(maxsize=2)
def _utc_second(second: int) -> str:
    # A busy service writes many lines a second: the date is formatted once for all of them.
    return datetime.fromtimestamp(second, UTC).strftime("%Y-%m-%dT%H:%M:%S")


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, Any] = {
            # ISO 8601 in UTC, to the millisecond, as logging itself cuts it (`record.msecs`).
            "time": f"{_utc_second(int(record.created))}.{int(record.msecs):03d}+00:00",
            "level": record.levelname,
            "logger": record.name,
            "message": redact_text(record.getMessage()),
        }
        request_id = request_id_var.get()
        if request_id:
            entry["request_id"] = request_id
        # What was passed with `extra=`: the record's attributes that every record does not have.
        fields = vars(record)
        for key, value in fields.items():
            if key not in _RECORD_ATTRS:
                entry[key] = redact(value, str(key))
        if record.exc_info:
            entry["exception"] = redact_text(self.formatException(record.exc_info))
        return _encode(entry)


LOGGING_CONFIG = Path(__file__).with_name("logging.json")


def configure_logging(level: str) -> None:
    """Send every logger, uvicorn's and Alembic's included, through one JSON handler on stdout.

    uvicorn's access logger gets no handler: the request middleware writes one access line per
    request, with its id and duration, which uvicorn's line would repeat without them.
    """
    config = json.loads(LOGGING_CONFIG.read_text(encoding="utf-8"))
    config["root"]["level"] = level
    logging.config.dictConfig(config)
    # What a JSON line never shows is not collected either (the logging HOWTO, "Optimization"):
    # thread and process names, and the caller's file and line, which costs a walk up the
    # stack on every call.
    logging.logThreads = False
    logging.logProcesses = False
    logging.logMultiprocessing = False
    logging._srcfile = None
    # A library's warning (a deprecation, PyJWT's key length...) becomes one JSON line too,
    # instead of multi-line text on stderr.
    logging.captureWarnings(True)
