"""Least privilege on PostgreSQL (RUN-2): the app's role reads and writes rows, and nothing else.

app/db/roles.py runs, as the db-roles init container does, with the test database's user standing
in for the RDS master user (it needs CREATEROLE, as the master user has). The two roles are named
after the test database, so test runs on other databases of the server never share them.
"""

import secrets
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient
from psycopg import errors, sql
from sqlalchemy import make_url

from app.db.roles import ensure_roles, libpq_url
from app.main import create_app
from tests.conftest import alembic_config, make_settings

pytestmark = pytest.mark.postgres

PASSWORD = "correct horse battery staple"


def role_url(master_url: str, suffix: str, password: str) -> str:
    master = make_url(master_url)
    return master.set(username=f"{master.database}_{suffix}", password=password).render_as_string(hide_password=False)


def connect(url: str) -> psycopg.Connection:
    return psycopg.connect(libpq_url(make_url(url)), autocommit=True)


def drop_roles(master_url: str, *urls: str) -> None:
    with connect(master_url) as connection:
        for url in urls:
            name = sql.Identifier(make_url(url).username or "")
            exists = connection.execute("SELECT 1 FROM pg_roles WHERE rolname = %s", (make_url(url).username,))
            if exists.fetchone():
                connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(name))
                connection.execute(sql.SQL("DROP OWNED BY {}").format(name))
                connection.execute(sql.SQL("DROP ROLE {}").format(name))


@pytest.fixture
def roles(pg_url: str) -> Iterator[tuple[str, str, str]]:
    """(master, migrator, app) URLs; the roles are dropped afterwards."""
    migrator = role_url(pg_url, "migrator", secrets.token_hex(16))
    app = role_url(pg_url, "app", secrets.token_hex(16))
    drop_roles(pg_url, migrator, app)
    try:
        yield pg_url, migrator, app
    finally:
        drop_roles(pg_url, migrator, app)


def test_bootstrap_is_idempotent_and_sets_the_current_passwords(roles: tuple[str, str, str]) -> None:
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    ensure_roles(master, migrator, app)  # every pod start runs it again
    connect(migrator).close()
    connect(app).close()

    rotated = role_url(master, "app", secrets.token_hex(16))  # the secret got a new password
    ensure_roles(master, migrator, rotated)
    connect(rotated).close()
    with pytest.raises(psycopg.OperationalError):
        connect(app).close()

    with connect(master) as connection:
        flags = connection.execute(
            "SELECT rolsuper, rolcreaterole, rolcreatedb FROM pg_roles WHERE rolname = ANY(%s)",
            ([make_url(migrator).username, make_url(app).username],),
        ).fetchall()
    assert flags == [(False, False, False)] * 2


def test_the_master_user_is_refused_as_a_role(roles: tuple[str, str, str]) -> None:
    master, migrator, _ = roles
    with pytest.raises(SystemExit, match="three different roles"):
        ensure_roles(master, migrator, master)


def test_app_role_has_dml_only_on_tables_the_migrator_owns(roles: tuple[str, str, str]) -> None:
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    command.upgrade(alembic_config(migrator), "head")

    with connect(master) as connection:
        owner = connection.execute("SELECT tableowner FROM pg_tables WHERE tablename = 'users'").fetchone()
    assert owner == (make_url(migrator).username,), "the migrator owns what it migrates"

    with connect(app) as connection:
        connection.execute("INSERT INTO users (username, password_hash, created_at) VALUES ('alice', 'x', now())")
        connection.execute("UPDATE users SET password_hash = 'y' WHERE username = 'alice'")
        assert connection.execute("SELECT password_hash FROM users").fetchall() == [("y",)]
        connection.execute("DELETE FROM users")
        for statement in (
            "CREATE TABLE intruder (id int)",
            "DROP TABLE users",
            "ALTER TABLE users ADD COLUMN intruder int",
            "TRUNCATE users",
            "CREATE ROLE intruder",
        ):
            with pytest.raises(errors.InsufficientPrivilege):
                connection.execute(statement)


def test_tables_made_before_the_roles_are_handed_to_the_migrator(roles: tuple[str, str, str]) -> None:
    """A service deployed before 0.2.0 migrated as the master user, which owns its tables."""
    master, migrator, app = roles
    command.upgrade(alembic_config(master), "head")
    ensure_roles(master, migrator, app)
    command.downgrade(alembic_config(migrator), "base")  # DDL on them: the migrator owns them now
    command.upgrade(alembic_config(migrator), "head")
    with connect(app) as connection:
        connection.execute("INSERT INTO users (username, password_hash, created_at) VALUES ('bob', 'x', now())")


def test_the_service_serves_as_the_app_role(roles: tuple[str, str, str]) -> None:
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    command.upgrade(alembic_config(migrator), "head")
    with TestClient(create_app(make_settings(app))) as client:
        assert client.post("/users", json={"username": "carol", "password": PASSWORD}).status_code == 201
        token = client.post("/auth/token", json={"username": "carol", "password": PASSWORD}).json()["access_token"]
        me = client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
        assert me.status_code == 200
        assert me.json()["username"] == "carol"
        assert client.get("/ready").status_code == 200


def test_a_rotated_role_password_needs_no_restart(roles: tuple[str, str, str], tmp_path: Path) -> None:
    """Terraform writes a new app password, db-roles sets it, External Secrets and the kubelet
    rewrite the pod's URL file: the running service keeps answering, on new connections too."""
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    command.upgrade(alembic_config(migrator), "head")
    url_file = tmp_path / "url"
    url_file.write_text(app)
    with TestClient(create_app(make_settings("", database_url_file=url_file))) as client:
        assert client.post("/users", json={"username": "dave", "password": PASSWORD}).status_code == 201

        rotated = role_url(master, "app", secrets.token_hex(16))
        ensure_roles(master, migrator, rotated)
        url_file.write_text(rotated)
        # As a failover would: every open connection goes, and the call waits until each has gone.
        with connect(master) as connection:
            connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(make_url(app).username or "")))
            connection.execute(
                "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s",
                (make_url(app).username,),
            )
        with pytest.raises(psycopg.OperationalError):  # the old password is refused: the test proves something
            connect(app).close()

        assert client.post("/auth/token", json={"username": "dave", "password": PASSWORD}).status_code == 200
        assert client.get("/ready").status_code == 200
