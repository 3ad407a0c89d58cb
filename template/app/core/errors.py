"""422 answers that name the field and the rule, and never repeat a secret the client sent (RUN-2)."""

from typing import Any

from fastapi import Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.core.logging import is_sensitive_key


def _public(error: dict[str, Any]) -> dict[str, Any]:
    entry = {"loc": list(error.get("loc", ())), "msg": error.get("msg", ""), "type": error.get("type", "")}
    value = error.get("input")
    # The submitted value helps with a name or a number. A secret field's value is left out, and so
    # is the body when it failed as a whole (whatever it is, it may hold the password), and so is
    # any object or list.
    field_level = len(entry["loc"]) > 1
    # Any field named like a secret (password, new_password, api_key, token...), as the logs judge it.
    secret = any(is_sensitive_key(str(part)) for part in entry["loc"])
    if field_level and not secret and not isinstance(value, dict | list):
        entry["input"] = value
    return entry


async def validation_error_handler(_request: Request, exc: Exception) -> JSONResponse:
    # Registered for RequestValidationError only; Starlette's signature takes any exception.
    errors = exc.errors() if isinstance(exc, RequestValidationError) else []
    return JSONResponse(status_code=422, content=jsonable_encoder({"detail": [_public(e) for e in errors]}))
