"""Probes. Liveness says the process is alive; readiness says it can serve (K8S-1, OPS-3)."""

import asyncio
import logging

from fastapi import APIRouter, Request, Response, status
from sqlalchemy import Engine, text
from sqlalchemy.exc import SQLAlchemyError

router = APIRouter(tags=["health"])
logger = logging.getLogger(__name__)


@router.get("/health")
async def health() -> dict[str, str]:
    # Never touches the database: a database outage must not make Kubernetes restart every pod.
    return {"status": "ok"}


def ping(engine: Engine) -> None:
    with engine.connect() as connection:
        connection.execute(text("SELECT 1"))


@router.get("/ready")
async def ready(request: Request, response: Response) -> dict[str, str]:
    # Threads and connections of its own (app/main.py): requests that fill the server's thread
    # pool or the database pool must not read as an outage, or Kubernetes takes a busy pod out
    # of the load balancer when it is needed most (RUN-2).
    try:
        await asyncio.get_running_loop().run_in_executor(
            request.app.state.ready_executor, ping, request.app.state.ready_engine
        )
    except SQLAlchemyError as exc:
        logger.warning("readiness check failed", extra={"error": type(exc).__name__})
        response.status_code = status.HTTP_503_SERVICE_UNAVAILABLE
        return {"status": "unavailable", "reason": "database unreachable"}
    return {"status": "ready"}
