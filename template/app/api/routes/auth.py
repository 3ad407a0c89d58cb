import logging
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, select, update
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session

from app.api.deps import HasherDep, LimiterDep, SettingsDep
from app.core.rate_limit import client_address
from app.core.security import OverloadedError, PasswordHasher, create_access_token
from app.models import User
from app.schemas.user import LoginRequest, Token

router = APIRouter(prefix="/auth", tags=["auth"])
logger = logging.getLogger(__name__)


def password_hash_of(engine: Engine, username: str) -> str | None:
    # A session of its own, closed before the password is checked: no pooled connection waits on
    # a hash, so a login flood cannot drain the pool that /ready and every other route need (RUN-2).
    with Session(engine) as session:
        return session.scalar(select(User.password_hash).where(User.username == username))


def replace_password_hash(engine: Engine, username: str, old_hash: str, new_hash: str) -> bool:
    # Only if the hash is still the one just checked: a password changed meanwhile is kept.
    with engine.begin() as connection:
        result = connection.execute(
            update(User).where(User.username == username, User.password_hash == old_hash).values(password_hash=new_hash)
        )
        return result.rowcount == 1


async def upgrade_password_hash(
    engine: Engine, hasher: PasswordHasher, username: str, password: str, old_hash: str
) -> None:
    """A bcrypt hash of an earlier release, or Argon2 with older parameters, becomes a current Argon2id hash (SEC-2)."""
    try:
        new_hash = await hasher.hash(password)
    except OverloadedError:
        return  # the hashing queue is full: the user's next login upgrades it
    try:
        upgraded = await run_in_threadpool(replace_password_hash, engine, username, old_hash, new_hash)
    except SQLAlchemyError as error:
        # The password was right: a write the database refuses now (failover, read-only window,
        # lock timeout) must not turn the login into a 500; the next login tries again.
        logger.warning("password hash upgrade failed", extra={"username": username, "error": type(error).__name__})
        return
    if upgraded:  # a concurrent login may have upgraded it first
        logger.info("password hash upgraded", extra={"username": username})


@router.post("/token")
async def login(
    body: LoginRequest, request: Request, settings: SettingsDep, hasher: HasherDep, limiter: LimiterDep
) -> Token:
    client, username = client_address(request), body.username.lower()
    await limiter.hit("login_per_client", client)
    await limiter.check("login_failures_per_client_and_username", client, username)
    await limiter.check("login_failures_per_username", username)
    password_hash = await run_in_threadpool(password_hash_of, request.app.state.read_engine, body.username)
    # An unknown name and a wrong password take the same time and get the same answer (RUN-2); a
    # bcrypt hash of an earlier release takes bcrypt's time until its first login upgrades it.
    if not await hasher.verify(body.password, password_hash):
        await limiter.count("login_failures_per_client_and_username", client, username)
        await limiter.count("login_failures_per_username", username)
        logger.info("login refused", extra={"username": body.username})
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    if password_hash is not None and hasher.needs_rehash(password_hash):
        # Once per user: this login costs a second hash, the next ones one again.
        await upgrade_password_hash(request.app.state.engine, hasher, body.username, body.password, password_hash)
    token = create_access_token(
        body.username,
        settings.secret_key.get_secret_value(),
        timedelta(minutes=settings.access_token_expire_minutes),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    return Token(access_token=token)
