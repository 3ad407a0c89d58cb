"""The baseline of `me_rps`: an authenticated read written by hand, with nothing but the work.

Decodes the same JWT (PyJWT, HS256, the same required claims), runs one SELECT by username with
the same driver and the pool settings of the generated service's engine, and answers the same
JSON. No middleware, no logging, no dependency injection beyond FastAPI's own. bench/run.py serves
it with the generated service's command and virtualenv.

It is the straightforward way to write it: the SELECT in FastAPI's thread pool. The service has
read on psycopg's asyncio pool since issue 16's second round; bench/me_baseline_async.py is the
hand-written app that does that too, measured beside this one.
"""

import os
from typing import Annotated

from fastapi import FastAPI, Header, HTTPException
from me_token import bearer_subject
from sqlalchemy import create_engine, text

# The service's pool as app/main.py and app/db/session.py make it: SQLAlchemy's QueuePool of 15
# connections without overflow, psycopg 3, the same connect timeout, no pre-ping.
engine = create_engine(os.environ["DATABASE_URL"], pool_size=15, max_overflow=0, connect_args={"connect_timeout": 3})
QUERY = text("SELECT id, username, created_at FROM users WHERE username = :username")

app = FastAPI()


@app.get("/health")
async def health() -> dict[str, str]:
    return {"status": "ok"}


@app.get("/users/me")
def me(authorization: Annotated[str, Header()] = "") -> dict[str, object]:
    username = bearer_subject(authorization)
    with engine.connect() as connection:
        row = connection.execute(QUERY, {"username": username}).first()
    if row is None:
        raise HTTPException(401)
    return {"id": row.id, "username": row.username, "created_at": row.created_at.isoformat()}
