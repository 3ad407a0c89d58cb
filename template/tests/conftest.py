"""Fixtures: every API test runs on SQLite, and on PostgreSQL too when TEST_DATABASE_URL is set.

TEST_DATABASE_URL is a SQLAlchemy URL of a database the tests may wipe, for example
postgresql+psycopg://app:app@localhost:5432/app_test. In CI (CI=true) it is required: the
PostgreSQL tests fail instead of skipping.
"""

import os
from collections.abc import Iterator
from pathlib import Path

# app.main builds the application when it is imported, and ENVIRONMENT has no default (RUN-2).
os.environ.setdefault("ENVIRONMENT", "test")

import pytest
from alembic import command
from alembic.config import Config
from fastapi import FastAPI
from fastapi.testclient import TestClient
from pydantic import SecretStr
from sqlalchemy import create_engine, text

from app.core.config import Settings
from app.main import create_app

PROJECT_ROOT = Path(__file__).resolve().parent.parent
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
TEST_SECRET_KEY = "test-secret-key-that-is-long-enough-0123456789"


def postgres_url() -> str:
    url = os.environ.get("TEST_DATABASE_URL", "")
    if not url:
        if IN_CI:
            pytest.fail("TEST_DATABASE_URL is not set: in CI the PostgreSQL tests must run", pytrace=False)
        pytest.skip("TEST_DATABASE_URL is not set")
    return url


def alembic_config(url: str) -> Config:
    config = Config(str(PROJECT_ROOT / "alembic.ini"))
    config.set_main_option("script_location", str(PROJECT_ROOT / "alembic"))
    config.set_main_option("sqlalchemy.url", url.replace("%", "%%"))
    return config


def reset_postgres(url: str) -> None:
    """An empty public schema, so each test starts from nothing."""
    engine = create_engine(url)
    with engine.begin() as connection:
        connection.execute(text("DROP SCHEMA IF EXISTS public CASCADE"))
        connection.execute(text("CREATE SCHEMA public"))
    engine.dispose()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> str:
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    url = postgres_url()
    reset_postgres(url)
    return url


@pytest.fixture
def pg_url() -> str:
    url = postgres_url()
    reset_postgres(url)
    return url


def make_settings(database_url: str, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "environment": "test",
        "database_url": database_url,
        "secret_key": SecretStr(TEST_SECRET_KEY),
        "database_connect_timeout_s": 1,
        **overrides,
    }
    if values["environment"] in {"local", "test"}:
        # The cheapest Argon2id argon2-cffi accepts: these tests prove behaviour, not hash strength.
        # dev and prod refuse less than the OWASP minimum (SEC-2), so they keep the defaults.
        values = {"password_hash_memory_kib": 8, "password_hash_time_cost": 1, **values}
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


@pytest.fixture
def settings(database_url: str) -> Settings:
    command.upgrade(alembic_config(database_url), "head")
    return make_settings(database_url)


@pytest.fixture
def app(settings: Settings) -> FastAPI:
    return create_app(settings)


@pytest.fixture
def client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app) as test_client:
        yield test_client
