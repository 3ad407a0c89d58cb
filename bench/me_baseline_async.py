"""The second baseline of `me_rps`: the hand-written authenticated read, on asyncio.

bench/me_baseline.py is the straightforward version (a sync SELECT in FastAPI's thread pool). Since
the generated service reads the user on psycopg's asyncio pool (issue 16), this one does the same
by hand, to show what the service's middleware, dependencies and logging cost over the same I/O:
the same JWT check, one SELECT by username on a psycopg_pool AsyncConnectionPool of the service's
read pool's size (autocommit connections, the same connect timeout), the same JSON. bench/run.py
serves it with the generated service's command and virtualenv.
"""

import os
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from me_token import bearer_subject
from psycopg_pool import AsyncConnectionPool
from sqlalchemy import make_url

CONNINFO = make_url(os.environ["DATABASE_URL"]).set(drivername="postgresql").render_as_string(hide_password=False)
QUERY = "SELECT id, username, created_at FROM users WHERE username = %s"
# The service's read pool: its size, DATABASE_READ_POOL_SIZE, which bench/run.py sets for both
# servers to the service's default.
pool = AsyncConnectionPool(
    CONNINFO,
    min_size=1,
    max_size=int(os.environ["DATABASE_READ_POOL_SIZE"]),
    open=False,
    kwargs={"autocommit": True, "connect_timeout": 3},
)


@asynccontextmanager
async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
    await pool.open()
    yield
    await pool.close()


app = FastAPI(lifespan=lifespan)


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/users/me")
async def me(authorization: Annotated[str, Header()] = "") -> dict[str, object]:
    username = bearer_subject(authorization)
    async with pool.connection() as connection:
        row = await (await connection.execute(QUERY, (username,))).fetchone()
    if row is None:
        raise HTTPException(401)
    return {"id": row[0], "username": row[1], "created_at": row[2].isoformat()}
