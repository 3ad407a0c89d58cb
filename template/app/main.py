"""The application: settings, logging, database engine and routes, assembled once."""

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI
from fastapi.exceptions import RequestValidationError

from app.api.router import api_router
from app.core.config import Settings, get_settings
from app.core.errors import validation_error_handler
from app.core.logging import configure_logging
from app.core.middleware import RequestContextMiddleware
from app.core.rate_limit import RateLimiter
from app.core.security import PasswordHasher
from app.db.session import create_db_engine

logger = logging.getLogger(__name__)


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or get_settings()
    configure_logging(settings.log_level)
    engine = create_db_engine(settings.database_url, settings.database_connect_timeout_s)
    hasher = PasswordHasher(settings.bcrypt_rounds, settings.password_hash_workers)
    limiter = RateLimiter(
        settings.rate_limit_storage_uri,
        login_per_client=settings.rate_limit_login_per_client,
        login_per_username=settings.rate_limit_login_per_username,
        signup_per_client=settings.rate_limit_signup_per_client,
    )

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        logger.info("starting", extra={"environment": settings.environment, "hash_workers": hasher.workers})
        yield
        hasher.shutdown()
        engine.dispose()

    app = FastAPI(
        title=settings.project_name,
        lifespan=lifespan,
        # The interactive docs stay off in production: they advertise every route.
        docs_url=None if settings.environment == "prod" else "/docs",
        redoc_url=None,
    )
    app.state.settings = settings
    app.state.engine = engine
    app.state.hasher = hasher
    app.state.limiter = limiter
    app.add_exception_handler(RequestValidationError, validation_error_handler)
    app.add_middleware(RequestContextMiddleware)
    app.include_router(api_router)
    return app


app = create_app()
