from fastapi import APIRouter, HTTPException, Request, status
from fastapi.concurrency import run_in_threadpool
from sqlalchemy import Engine
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from app.api.deps import CurrentUser, HasherDep, LimiterDep
from app.core.rate_limit import client_address
from app.models import User
from app.schemas.user import UserCreate, UserRead

router = APIRouter(prefix="/users", tags=["users"])


def insert_user(engine: Engine, username: str, password_hash: str) -> UserRead:
    with Session(engine, expire_on_commit=False) as session:
        user = User(username=username, password_hash=password_hash)
        session.add(user)
        try:
            session.commit()
        except IntegrityError:  # the unique index decides, even between two concurrent signups
            session.rollback()
            raise HTTPException(status.HTTP_409_CONFLICT, detail=f"Username {username!r} is taken") from None
        return UserRead.model_validate(user)


@router.post("", status_code=status.HTTP_201_CREATED)
async def create_user(body: UserCreate, request: Request, hasher: HasherDep, limiter: LimiterDep) -> UserRead:
    # A taken name answers 409, which tells a caller that the name exists; the per-client limit
    # keeps that from listing names (RUN-2). The hash comes first, taken or not, so the time of
    # the answer says nothing more, and no database connection waits on the hash.
    await limiter.hit("signup_per_client", client_address(request))
    password_hash = await hasher.hash(body.password)
    return await run_in_threadpool(insert_user, request.app.state.engine, body.username, password_hash)


@router.get("/me")
async def read_me(user: CurrentUser) -> UserRead:
    # `async def`: nothing here blocks, and a plain `def` would cost a hop to the thread pool.
    return user
