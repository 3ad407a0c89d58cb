import logging
from datetime import timedelta

from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine, select
from sqlalchemy.orm import Session

from app.api.deps import HasherDep, LimiterDep, SettingsDep
from app.core.rate_limit import client_address
from app.core.security import create_access_token
from app.models import User
from app.schemas.user import LoginRequest, Token

router = APIRouter(prefix="/auth", tags=["auth"])
logger = logging.getLogger(__name__)


def password_hash_of(engine: Engine, username: str) -> str | None:
    # A session of its own, closed before the password is checked: no pooled connection waits on
    # bcrypt, so a login flood cannot drain the pool that /ready and every other route need (RUN-2).
    with Session(engine) as session:
        return session.scalar(select(User.password_hash).where(User.username == username))


@router.post("/token")
async def login(
    body: LoginRequest, request: Request, settings: SettingsDep, hasher: HasherDep, limiter: LimiterDep
) -> Token:
    client, username = client_address(request), body.username.lower()
    await limiter.hit("login_per_client", client)
    await limiter.check("login_failures_per_client_and_username", client, username)
    await limiter.check("login_failures_per_username", username)
    password_hash = await run_in_threadpool(password_hash_of, request.app.state.engine, body.username)
    # An unknown name and a wrong password take the same time and get the same answer (RUN-2).
    if not await hasher.verify(body.password, password_hash):
        await limiter.count("login_failures_per_client_and_username", client, username)
        await limiter.count("login_failures_per_username", username)
        logger.info("login refused", extra={"username": body.username})
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = create_access_token(
        body.username,
        settings.secret_key.get_secret_value(),
        timedelta(minutes=settings.access_token_expire_minutes),
        issuer=settings.jwt_issuer,
        audience=settings.jwt_audience,
    )
    return Token(access_token=token)
