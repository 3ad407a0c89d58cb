import logging
from datetime import timedelta

from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select

from app.api.deps import SessionDep, SettingsDep
from app.core.security import create_access_token, verify_password
from app.models import User
from app.schemas.user import LoginRequest, Token

router = APIRouter(prefix="/auth", tags=["auth"])
logger = logging.getLogger(__name__)


@router.post("/token")
def login(body: LoginRequest, session: SessionDep, settings: SettingsDep) -> Token:
    user = session.scalar(select(User).where(User.username == body.username))
    if user is None or not verify_password(body.password, user.password_hash):
        logger.info("login refused", extra={"username": body.username})
        raise HTTPException(
            status.HTTP_401_UNAUTHORIZED,
            detail="Wrong username or password",
            headers={"WWW-Authenticate": "Bearer"},
        )
    token = create_access_token(
        user.username,
        settings.secret_key.get_secret_value(),
        timedelta(minutes=settings.access_token_expire_minutes),
    )
    return Token(access_token=token)
