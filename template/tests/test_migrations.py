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
    engine = create_engine(pg_url)
    with engine.connect() as connection:
        versions = connection.execute(text("SELECT version_num FROM alembic_version")).scalars().all()
    engine.dispose()
    assert versions == ["0001"]
