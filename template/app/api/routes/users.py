from fastapi import APIRouter, HTTPException, status
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError

from app.api.deps import CurrentUser, SessionDep, SettingsDep
from app.core.security import hash_password
from app.models import User
from app.schemas.user import UserCreate, UserRead

router = APIRouter(prefix="/users", tags=["users"])


@router.post("", status_code=status.HTTP_201_CREATED)
def create_user(body: UserCreate, session: SessionDep, settings: SettingsDep) -> UserRead:
    conflict = HTTPException(status.HTTP_409_CONFLICT, detail=f"Username {body.username!r} is taken")
    if session.scalar(select(User.id).where(User.username == body.username)) is not None:
        raise conflict
    user = User(username=body.username, password_hash=hash_password(body.password, settings.bcrypt_rounds))
    session.add(user)
    try:
        session.commit()
    except IntegrityError:  # a concurrent request took the name between the check and the insert
        session.rollback()
        raise conflict from None
    return UserRead.model_validate(user)


@router.get("/me")
def read_me(user: CurrentUser) -> UserRead:
    return UserRead.model_validate(user)
