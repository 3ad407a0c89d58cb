"""The application: settings, logging, database engine and routes, assembled once."""

import gc
import logging
from collections.abc import AsyncIterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import asynccontextmanager

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse

from app.api.deps import users_by_name
from app.api.router import routers
from app.core.config import Settings, get_settings
from app.core.errors import validation_error_handler
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.core.rate_limit import RateLimiter
from app.core.security import OverloadedError, PasswordHasher, VerifiedTokens, argon2id
from app.db.session import create_db_engine, create_read_pool

logger = logging.getLogger(__name__)


async def overloaded_handler(_request: Request, _exc: Exception) -> JSONResponse:
    # RUN-2: the hashing queue is full; another pod, or this one a second later, will take it.
    return JSONResponse({"detail": "Too busy, retry"}, status_code=503, headers={"Retry-After": "1"})


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = create_db_engine(
        settings.database_url,
        settings.database_connect_timeout_s,
        settings.database_url_file,
        pool_size=settings.database_pool_size,
        max_overflow=0,
    )
    # One SELECT needs no transaction. On an autocommit connection psycopg sends the statement
    # alone; in a transaction a BEGIN goes first and a ROLLBACK follows when the connection goes
    # back to the pool: three round trips for one query. The same pool as `engine`, whose
    # sessions keep their transactions for anything that writes.
    read_engine = engine.execution_options(isolation_level="AUTOCOMMIT")
    # /ready gets connections and threads of its own: a pool busy with requests must not read as
    # an outage (a probe that waits on it times out, and Kubernetes takes the pod out of the load
    # balancer). Two of each, so that a probe stuck on an unreachable database (up to the connect
    # timeout) does not hold up the next one.
    ready_engine = create_db_engine(
        settings.database_url,
        settings.database_connect_timeout_s,
        settings.database_url_file,
        pool_size=1,
        max_overflow=1,
        pool_timeout=2,
    ).execution_options(isolation_level="AUTOCOMMIT")
    ready_executor = ThreadPoolExecutor(max_workers=2, thread_name_prefix="ready")
    hasher = PasswordHasher(
        argon2id(
            settings.password_hash_memory_kib, settings.password_hash_time_cost, settings.password_hash_parallelism
        ),
        workers=settings.password_hash_workers,
        max_waiting=settings.password_hash_max_waiting,
        max_wait_s=settings.password_hash_max_wait_s,
    )
    limiter = RateLimiter(
        settings.rate_limit_storage_uri,
        login_per_client=settings.rate_limit_login_per_client,
        login_failures_per_client_and_username=settings.rate_limit_login_failures_per_client_and_username,
        login_failures_per_username=settings.rate_limit_login_failures_per_username,
        signup_per_client=settings.rate_limit_signup_per_client,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("starting", extra={"environment": settings.environment, "hash_workers": hasher.workers})
        # Made and opened here, on the server's event loop, which its tasks and locks belong to.
        # Not waited for: a database down at startup must not stop /health from answering; the
        # pool keeps trying in the background and a request meanwhile gets a 503.
        read_pool = create_read_pool(
            settings.database_url,
            settings.database_connect_timeout_s,
            settings.database_url_file,
            settings.database_read_pool_size,
        )
        if read_pool is not None:
            await read_pool.open(wait=False)
        app.state.read_pool = read_pool
        app.state.users_by_name = users_by_name(read_pool) if read_pool is not None else None
        # What exists now (modules, the app, its pools) lives as long as the process: frozen out
        # of the garbage collector's way. A full collection then scans what requests leave
        # behind, not the 100k-odd objects of the imports: under load it came every few seconds
        # and held every request in flight for 50 to 80 ms (issue 16, the p99 of /users/me).
        gc.freeze()
        try:
            yield
        finally:
            # Back in the collector's hands, for a process that goes on (tests that start apps
            # one after another). Freezing is per process: with two apps running in one process
            # the first to stop unfreezes both, which costs only the pauses above.
            gc.unfreeze()
        app.state.read_pool = app.state.users_by_name = None
        if read_pool is not None:
            await read_pool.close()
        hasher.shutdown()
        engine.dispose()
        ready_engine.dispose()
        ready_executor.shutdown(wait=False, cancel_futures=True)

    app = FastAPI(
        title=settings.project_name,
        lifespan=lifespan,
        # The interactive docs stay off in production: they advertise every route.
        docs_url=None if settings.environment == "prod" else "/docs",
        redoc_url=None,
        # The schema too: it lists every route and body for whoever asks (RUN-2).
        openapi_url=None if settings.environment == "prod" else "/openapi.json",
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.read_engine = read_engine
    # The asyncio pool of the authenticated read and its batched reads, while the lifespan runs;
    # the read goes through read_engine on SQLite, and without a lifespan (app/api/deps.py).
    app.state.read_pool = app.state.users_by_name = None
    app.state.ready_engine = ready_engine
    app.state.ready_executor = ready_executor
    app.state.hasher = hasher
    app.state.tokens = VerifiedTokens(
        settings.secret_key.get_secret_value(), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    app.state.limiter = limiter
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_exception_handler(OverloadedError, overloaded_handler)
    app.add_middleware(RequestContextMiddleware)
    for router in routers:
        app.include_router(router)
    return app


app = create_app()
