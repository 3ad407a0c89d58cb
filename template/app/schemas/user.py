from datetime import UTC, datetime
from typing import Annotated

from pydantic import AfterValidator, BaseModel, ConfigDict, Field

from app.core.security import BCRYPT_MAX_BYTES, password_too_long


def _fits_bcrypt(password: str) -> str:
    # A clear 422 here, instead of a 500 from bcrypt 5 (SEC-2).
    if password_too_long(password):
        raise ValueError(f"password must be at most {BCRYPT_MAX_BYTES} bytes in UTF-8")
    return password


def _as_utc(moment: datetime) -> datetime:
    # SQLite stores no offset and hands back a naive datetime; the service writes only UTC, so an
    # answer says so the same way on SQLite as on PostgreSQL.
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


UtcDatetime = Annotated[datetime, AfterValidator(_as_utc)]
Username = Annotated[str, Field(min_length=3, max_length=64, pattern=r"^[A-Za-z0-9_.-]+$")]
Password = Annotated[str, Field(min_length=1, max_length=BCRYPT_MAX_BYTES), AfterValidator(_fits_bcrypt)]
# The length rule sits on the string itself, so the message reads "at least 8 characters".
NewPassword = Annotated[str, Field(min_length=8, max_length=BCRYPT_MAX_BYTES), AfterValidator(_fits_bcrypt)]


class UserCreate(BaseModel):
    username: Username
    password: NewPassword


class UserRead(BaseModel):
    # Frozen: the requests of one batched read that ask for the same name share one instance
    # (app/db/batching.py).
    model_config = ConfigDict(from_attributes=True, frozen=True)

    id: int
    username: str
    created_at: UtcDatetime


class LoginRequest(BaseModel):
    username: Username
    password: Password


class Token(BaseModel):
    access_token: str
    token_type: str = "bearer"  # noqa: S105 - the OAuth2 token type, not a secret
