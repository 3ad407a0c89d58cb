"""Dependencies shared by the routes, as `Annotated` types."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, bindparam, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.rate_limit import RateLimiter
from app.core.security import InvalidTokenError, PasswordHasher, VerifiedTokens
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
_bearer = HTTPBearer(auto_error=False)
# Built once: SQLAlchemy caches its compiled form, psycopg prepares it on the server once it
# has run a few times on a connection.
_USER_BY_NAME = select(User.id, User.username, User.created_at).where(User.username == bindparam("username"))


def user_named(engine: Engine, username: str) -> UserRead | None:
    # Core, not the ORM: the columns the answer needs, without building a User instance that
    # nothing would use after the session closed. The connection is back in the pool before the
    # request goes on.
    with engine.connect() as connection:
        row = connection.execute(_USER_BY_NAME, {"username": username}).first()
    return UserRead.model_validate(row) if row is not None else None


async def get_current_user(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> UserRead:
    """The user the bearer token names. Checking the token never blocks, so it runs on the event loop
    (a token already verified is not checked again until it expires, app/core/security.py
    VerifiedTokens); only the SELECT goes to the thread pool: one hop per request, where a `def`
    dependency on a session dependency costs three (the session, its closing, this function)."""
    unauthorized = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Missing, invalid or expired token",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None:
        raise unauthorized
    tokens: VerifiedTokens = request.app.state.tokens
    try:
        username = tokens.subject(credentials.credentials)
    except InvalidTokenError:
        raise unauthorized from None
    # The autocommit engine: one round trip for the one SELECT (app/main.py).
    user = await run_in_threadpool(user_named, request.app.state.read_engine, username)
    if user is None:
        raise unauthorized
    return user


CurrentUser = Annotated[UserRead, Depends(get_current_user)]
