"""Migrations on PostgreSQL: up, down, and four concurrent `alembic upgrade head` (K8S-2)."""

import os
import subprocess
import sys

import pytest
from alembic import command
from sqlalchemy import create_engine, inspect, text

from tests.conftest import PROJECT_ROOT, alembic_config

pytestmark = pytest.mark.postgres


def tables(url: str) -> set[str]:
    engine = create_engine(url)
    try:
        return set(inspect(engine).get_table_names())
    finally:
        engine.dispose()


def test_upgrade_and_downgrade(pg_url: str) -> None:
    config = alembic_config(pg_url)
    command.upgrade(config, "head")
    assert {"users", "alembic_version"} <= tables(pg_url)
    command.downgrade(config, "base")
    assert "users" not in tables(pg_url)
    command.upgrade(config, "head")
    assert "users" in tables(pg_url)


def test_concurrent_upgrades_apply_the_schema_once(pg_url: str) -> None:
    env = {**os.environ, "DATABASE_URL": pg_url}
    processes = [
        subprocess.Popen(
            [sys.executable, "-m", "alembic", "upgrade", "head"],
            cwd=PROJECT_ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        for _ in range(4)
    ]
    outputs = [process.communicate(timeout=120)[0] for process in processes]
    assert [p.returncode for p in processes] == [0, 0, 0, 0], "\n".join(outputs)
    # Exactly one process ran the migration; the others found the schema at head.
    assert sum(output.count("Running upgrade  -> 0001") for output in outputs) == 1, "\n".join(outputs)
    assert sum(output.count("Running upgrade 0001 -> 0002") for output in outputs) == 1, "\n".join(outputs)
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert versions == ["0002"]


def test_a_database_of_the_first_release_takes_argon2id_hashes(pg_url: str) -> None:
    """0.1.0's column held bcrypt's 60 characters; its rows survive and an Argon2id hash fits (SEC-2)."""
    config = alembic_config(pg_url)
    command.upgrade(config, "0001")
    bcrypt_hash = "$2b$12$" + "a" * 53
    argon2id_hash = "$argon2id$v=19$m=19456,t=2,p=1$" + "s" * 22 + "$" + "h" * 43
    engine = create_engine(pg_url)
    try:
        with engine.begin() as connection:
            connection.execute(
                text("INSERT INTO users (username, password_hash, created_at) VALUES ('alice', :hash, now())"),
                {"hash": bcrypt_hash},
            )
        command.upgrade(config, "head")
        with engine.begin() as connection:
            assert connection.scalar(text("SELECT password_hash FROM users WHERE username = 'alice'")) == bcrypt_hash
            connection.execute(
                text("UPDATE users SET password_hash = :hash WHERE username = 'alice'"), {"hash": argon2id_hash}
            )
            assert connection.scalar(text("SELECT password_hash FROM users")) == argon2id_hash
    finally:
        engine.dispose()
