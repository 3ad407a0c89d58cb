"""Credential rotation is a non-event (RUN-2): a new password reaches new connections, no restart.

The test changes the service role's password in PostgreSQL while the service runs, rewrites the
URL file at once (what External Secrets and the kubelet do to the mounted db-app-secret), and cuts
the service's open connections (what a failover or an idle timeout does). Requests must keep
succeeding. The role gets its password back at the end. The two orders a role rotation really
takes (the file first, PostgreSQL days later; or db-roles first, the files a minute later) are
tests/test_database_roles.py's.
"""

import secrets
from collections.abc import Iterator
from pathlib import Path

import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from app.main import create_app
from tests.conftest import alembic_config, make_settings

PASSWORD = "correct horse battery staple"


def with_password(url: str, password: str) -> str:
    return make_url(url).set(password=password).render_as_string(hide_password=False)


@pytest.fixture
def migrated(pg_url: str) -> str:
    command.upgrade(alembic_config(pg_url), "head")
    return pg_url


@pytest.fixture
def rotating(migrated: str, tmp_path: Path) -> Iterator[tuple[str, Path]]:
    """The URL file the service reads, and a promise to give the role its password back."""
    url_file = tmp_path / "url"
    url_file.write_text(migrated)
    original = make_url(migrated).password
    try:
        yield migrated, url_file
    finally:
        restore = create_engine(url_file.read_text())
        with restore.begin() as connection:
            connection.execute(text(f"ALTER ROLE CURRENT_USER PASSWORD '{original}'"))
        restore.dispose()


def test_a_rotated_password_needs_no_restart(rotating: tuple[str, Path]) -> None:
    old_url, url_file = rotating
    app = create_app(make_settings("", database_url_file=url_file))
    with TestClient(app) as client:
        assert client.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
        token = client.post("/auth/token", json={"username": "alice", "password": PASSWORD}).json()["access_token"]

        new_password = secrets.token_hex(16)
        admin = create_engine(old_url)
        with admin.begin() as connection:
            connection.execute(text(f"ALTER ROLE CURRENT_USER PASSWORD '{new_password}'"))
            url_file.write_text(with_password(old_url, new_password))
            # Every connection the service holds goes, as in a failover: the next ones are new.
            connection.execute(
                text(
                    "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                    "WHERE usename = CURRENT_USER AND pid <> pg_backend_pid()"
                )
            )
        admin.dispose()
        stale = create_engine(old_url)
        with pytest.raises(OperationalError):  # the server checks passwords: the test proves something
            stale.connect().close()
        stale.dispose()

        headers = {"Authorization": f"Bearer {token}"}
        assert client.get("/users/me", headers=headers).status_code == 200
        assert client.post("/auth/token", json={"username": "alice", "password": PASSWORD}).status_code == 200
        assert client.get("/ready").status_code == 200
