"""Dependencies shared by the routes, as `Annotated` types."""

from collections.abc import Iterator
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.openapi.models import HTTPBearer as HTTPBearerModel
from fastapi.security.base import SecurityBase
from psycopg import AsyncConnection
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import Engine, any_, bindparam, select
from sqlalchemy.dialects.postgresql.psycopg import dialect as psycopg_dialect
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.rate_limit import RateLimiter
from app.core.security import InvalidTokenError, PasswordHasher, VerifiedTokens
from app.db.batching import BatchedReads
from app.models import User
from app.schemas.user import UserRead

# The dependencies that only read app.state are `async def`: FastAPI runs a plain `def` dependency
# in its thread pool, a hop per request for a lookup that never blocks.


async def get_app_settings(request: Request) -> Settings:
    """The settings this application was built with (create_app), not a fresh read of the environment."""
    settings: Settings = request.app.state.settings
    return settings


async def get_hasher(request: Request) -> PasswordHasher:
    hasher: PasswordHasher = request.app.state.hasher
    return hasher


async def get_limiter(request: Request) -> RateLimiter:
    limiter: RateLimiter = request.app.state.limiter
    return limiter


def get_session(request: Request) -> Iterator[Session]:
    with Session(request.app.state.engine, expire_on_commit=False) as session:
        yield session


SettingsDep = Annotated[Settings, Depends(get_app_settings)]
HasherDep = Annotated[PasswordHasher, Depends(get_hasher)]
LimiterDep = Annotated[RateLimiter, Depends(get_limiter)]
SessionDep = Annotated[Session, Depends(get_session)]
# Built once: SQLAlchemy caches its compiled form, psycopg prepares it on the server once it
# has run a few times on a connection.
_USER_BY_NAME = select(User.id, User.username, User.created_at).where(User.username == bindparam("username"))


# For the asyncio pool, which bypasses SQLAlchemy: the same columns for several names at once, as
# psycopg is sent it (app/db/batching.py).
_USERS_BY_NAME_SQL = str(
    select(User.id, User.username, User.created_at)
    .where(User.username == any_(bindparam("keys")))
    .compile(dialect=psycopg_dialect())  # type: ignore[no-untyped-call]
)


def user_named(engine: Engine, username: str) -> UserRead | None:
    # Core, not the ORM: the columns the answer needs, without building a User instance that
    # nothing would use after the session closed. The connection is back in the pool before the
    # request goes on.
    with engine.connect() as connection:
        row = connection.execute(_USER_BY_NAME, {"username": username}).first()
    return UserRead.model_validate(row) if row is not None else None


class BearerUser(SecurityBase):
    """The user the request's bearer token names, as one dependency.

    A security scheme, so the OpenAPI schema and /docs show it as `HTTPBearer` would. One level
    of dependencies, where `Depends(HTTPBearer())` under a `get_current_user` function made two:
    FastAPI solves each level anew (its parameters, headers, cookies and a Response), on every
    request (issue 16, bench/run.py `me_rps`).

    Checking the token never blocks, so it runs on the event loop (a token already verified is
    not checked again until it expires, app/core/security.py VerifiedTokens), and on PostgreSQL so
    does the SELECT, on psycopg's asyncio pool (`users_by_name`). On SQLite the SELECT goes to the
    thread pool.
    """

    def __init__(self) -> None:
        self.model = HTTPBearerModel()
        self.scheme_name = "HTTPBearer"

    async def __call__(self, request: Request) -> UserRead:
        # As HTTPBearer reads it: "Bearer <token>", the scheme in any case.
        scheme, _, token = request.headers.get("authorization", "").partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            raise _unauthorized()
        tokens: VerifiedTokens = request.app.state.tokens
        try:
            username = tokens.subject(token)
        except InvalidTokenError:
            raise _unauthorized() from None
        reads: BatchedReads[UserRead] | None = request.app.state.users_by_name
        if reads is not None:
            user = await reads.get(username)
        else:  # SQLite, or no lifespan: the autocommit engine, one round trip for the one SELECT (app/main.py)
            user = await run_in_threadpool(user_named, request.app.state.read_engine, username)
        if user is None:
            raise _unauthorized()
        return user


def _unauthorized() -> HTTPException:
    return HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Missing, invalid or expired token",
        headers={"WWW-Authenticate": "Bearer"},
    )


def users_by_name(pool: AsyncConnectionPool[AsyncConnection[Any]]) -> BatchedReads[UserRead]:
    """The authenticated read on the asyncio pool: on the event loop, no hop to the thread pool,
    no SQLAlchemy execution (app/db/session.py), and the reads that come together (started in the
    same turn of the event loop, or while a connection is awaited) sent as one SELECT
    (app/db/batching.py)."""
    return BatchedReads(pool, _USERS_BY_NAME_SQL, _user_of_row)


def _user_of_row(row: tuple[Any, ...]) -> tuple[str, UserRead]:
    return row[1], UserRead(id=row[0], username=row[1], created_at=row[2])


# One instance: FastAPI caches a dependency's result for the request, and looks up
# `app.dependency_overrides`, by the callable itself, this object (override `current_user`, not
# the class).
current_user = BearerUser()
CurrentUser = Annotated[UserRead, Depends(current_user)]
