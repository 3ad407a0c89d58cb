"""Least privilege on PostgreSQL (RUN-2): the app's role reads and writes rows, and nothing else.

app/db/roles.py runs, as the db-roles init container does, with the test database's user standing
in for the RDS master user (it needs CREATEROLE, as the master user has). The two roles are named
after the test database, so test runs on other databases of the server never share them.
"""

import json
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient
from psycopg import errors, sql
from sqlalchemy import make_url

from app.core.logging import JsonFormatter
from app.db.locks import SCHEMA_LOCK_ID
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
    """(master, migrator, app) URLs; the roles are dropped afterwards, PUBLIC's TEMPORARY given back."""
    migrator = role_url(pg_url, "migrator", secrets.token_hex(16))
    app = role_url(pg_url, "app", secrets.token_hex(16))
    drop_roles(pg_url, migrator, app)
    try:
        yield pg_url, migrator, app
    finally:
        drop_roles(pg_url, migrator, app)
        with connect(pg_url) as connection:
            database = sql.Identifier(make_url(pg_url).database or "")
            connection.execute(sql.SQL("GRANT TEMPORARY ON DATABASE {} TO PUBLIC").format(database))


def cut_connections(master: str, role: str) -> None:
    """As a failover would: every open connection of the role goes, and the call waits until each has."""
    with connect(master) as connection:
        connection.execute(sql.SQL("GRANT {} TO CURRENT_USER").format(sql.Identifier(make_url(role).username or "")))
        connection.execute(
            "SELECT pg_terminate_backend(pid, 5000) FROM pg_stat_activity WHERE usename = %s",
            (make_url(role).username,),
        )


def refused(url: str) -> bool:
    try:
        connect(url).close()
    except psycopg.OperationalError:
        return True
    return False


def test_bootstrap_is_idempotent_and_sets_the_current_passwords(roles: tuple[str, str, str]) -> None:
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    ensure_roles(master, migrator, app)  # every pod start runs it again
    connect(migrator).close()
    connect(app).close()

    rotated = role_url(master, "app", secrets.token_hex(16))  # the secret got a new password
    ensure_roles(master, migrator, rotated, password_grace_s=0)
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
            "CREATE SCHEMA intruder",
            "CREATE TEMPORARY TABLE intruder (id int)",
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


def test_no_role_of_the_service_may_create_temporary_tables(roles: tuple[str, str, str]) -> None:
    """PUBLIC holds TEMPORARY on a new database: db-roles takes it back, from every role but the owner."""
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    for url in (app, migrator):
        with connect(url) as connection, pytest.raises(errors.InsufficientPrivilege):
            connection.execute("CREATE TEMPORARY TABLE scratch (id int)")


def test_the_migrator_may_create_a_trusted_extension(roles: tuple[str, str, str]) -> None:
    """pgcrypto is trusted: PostgreSQL lets whoever holds CREATE on the database install it."""
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    with connect(migrator) as connection:
        connection.execute("CREATE EXTENSION pgcrypto")
        assert connection.execute("SELECT length(gen_random_bytes(4))").fetchone() == (4,)
    with connect(app) as connection, pytest.raises(errors.InsufficientPrivilege):
        connection.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")


def test_roles_and_migrations_take_turns_on_one_lock(roles: tuple[str, str, str]) -> None:
    """A replica's GRANT ON ALL TABLES and another's ALTER TABLE must not run together."""
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    waiting = "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
    with connect(master) as holder, ThreadPoolExecutor(2) as pool:
        holder.execute("SELECT pg_advisory_lock(%s)", (SCHEMA_LOCK_ID,))
        try:
            both = [
                pool.submit(ensure_roles, master, migrator, app),
                pool.submit(command.upgrade, alembic_config(migrator), "head"),
            ]
            deadline = time.monotonic() + 10
            while holder.execute(waiting).fetchone() != (2,) and time.monotonic() < deadline:
                time.sleep(0.1)
            assert holder.execute(waiting).fetchone() == (2,), "db-roles and the migration wait for one lock"
            assert not any(f.done() for f in both)
        finally:
            holder.execute("SELECT pg_advisory_unlock(%s)", (SCHEMA_LOCK_ID,))
        for finished in both:
            finished.result(timeout=60)


@pytest.fixture
def serving(roles: tuple[str, str, str], tmp_path: Path) -> Iterator[tuple[TestClient, Path]]:
    """The service as a pod runs it: as the app role, its URL read from the mounted file."""
    master, migrator, app = roles
    ensure_roles(master, migrator, app)
    command.upgrade(alembic_config(migrator), "head")
    url_file = tmp_path / "url"
    url_file.write_text(app)
    with TestClient(create_app(make_settings("", database_url_file=url_file))) as client:
        assert client.post("/users", json={"username": "dave", "password": PASSWORD}).status_code == 201
        yield client, url_file


def serves(client: TestClient) -> None:
    assert client.post("/auth/token", json={"username": "dave", "password": PASSWORD}).status_code == 200
    assert client.get("/ready").status_code == 200


def test_rotation_file_first_then_postgresql(
    roles: tuple[str, str, str], serving: tuple[TestClient, Path], caplog: pytest.LogCaptureFixture
) -> None:
    """Terraform writes a new app password; External Secrets and the kubelet rewrite the running
    pods' files within two minutes; PostgreSQL gets it when the next pod's db-roles runs, maybe
    days later. New connections must keep opening all along."""
    master, migrator, app = roles
    client, url_file = serving
    rotated = role_url(master, "app", secrets.token_hex(16))

    url_file.write_text(rotated)
    cut_connections(master, app)
    assert refused(rotated), "PostgreSQL does not know the new password yet: the test proves something"
    serves(client)
    cut_connections(master, app)
    serves(client)

    ensure_roles(master, migrator, rotated, password_grace_s=0)  # the next pod's db-roles
    cut_connections(master, app)
    assert refused(app), "the old password is refused now"
    serves(client)

    lines = [json.loads(JsonFormatter().format(record)) for record in caplog.records]
    warnings = [line for line in lines if line["logger"] == "app.db.session"]
    assert warnings, "the fallback is logged"
    assert warnings[0]["level"] == "WARNING"
    assert warnings[0]["database_user"] == make_url(app).username
    for password in (make_url(app).password, make_url(rotated).password):
        assert password
        assert all(password not in json.dumps(line) for line in lines)


def test_rotation_postgresql_first_then_file(roles: tuple[str, str, str], serving: tuple[TestClient, Path]) -> None:
    """A new pod's db-roles reads the Secret External Secrets just rewrote, while the running pods'
    mounted files still hold the old password until the kubelet's next sync. PostgreSQL must not
    refuse the running pods meanwhile."""
    master, migrator, app = roles
    client, url_file = serving
    rotated = role_url(master, "app", secrets.token_hex(16))

    with ThreadPoolExecutor(1) as pool:
        db_roles = pool.submit(ensure_roles, master, migrator, rotated, password_grace_s=5)
        time.sleep(0.5)  # db-roles has seen the new password and is on its way to set it
        cut_connections(master, app)
        serves(client)
        url_file.write_text(rotated)  # the kubelet's sync
        cut_connections(master, app)
        serves(client)
        db_roles.result(timeout=60)
    cut_connections(master, app)
    assert refused(app), "PostgreSQL has the new password now"
    serves(client)
