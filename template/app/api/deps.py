"""Dependencies shared by the routes, as `Annotated` types."""

from collections.abc import Iterator
from typing import Annotated

from fastapi import Depends, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.rate_limit import RateLimiter
from app.core.security import InvalidTokenError, PasswordHasher, decode_access_token
from app.models import User

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


def user_named(engine: Engine, username: str) -> User | None:
    # The session closes before the request goes on: the user's columns are loaded, and the
    # pooled connection is back in the pool while the route and the response run.
    with Session(engine) as session:
        return session.scalar(select(User).where(User.username == username))


async def get_current_user(
    request: Request,
    settings: SettingsDep,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
) -> User:
    """The user the bearer token names. Checking the token never blocks, so it runs on the event loop;
    only the SELECT goes to the thread pool: one hop per request, where a `def` dependency on a
    session dependency costs three (the session, its closing, this function)."""
    unauthorized = HTTPException(
        status_code=status.HTTP_401_UNAUTHORIZED,
        detail="Missing, invalid or expired token",
        headers={"WWW-Authenticate": "Bearer"},
    )
    if credentials is None:
        raise unauthorized
    try:
        username = decode_access_token(
            credentials.credentials,
            settings.secret_key.get_secret_value(),
            issuer=settings.jwt_issuer,
            audience=settings.jwt_audience,
        )
    except InvalidTokenError:
        raise unauthorized from None
    user = await run_in_threadpool(user_named, request.app.state.read_engine, username)
    if user is None:
        raise unauthorized
    return user


CurrentUser = Annotated[User, Depends(get_current_user)]
