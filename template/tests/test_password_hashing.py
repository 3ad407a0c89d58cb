"""Passwords are stored as Argon2id (SEC-2); bcrypt hashes of earlier releases verify and are upgraded."""

from pathlib import Path
from typing import Any

import argon2
import bcrypt
import pytest
from fastapi.testclient import TestClient
from pydantic import SecretStr, ValidationError
from sqlalchemy import event, select
from sqlalchemy.exc import OperationalError
from sqlalchemy.orm import Session

from app.core.config import Settings
from app.core.security import BCRYPT_MAX_BYTES, verify_password
from app.main import create_app
from app.models import User
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"
PG_URL = "postgresql+psycopg://u:p@db:5432/app"


def stored_hash(client: TestClient, username: str) -> str:
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        password_hash = session.scalar(select(User.password_hash).where(User.username == username))
    assert password_hash is not None
    return password_hash


def add_user_as_an_earlier_release(client: TestClient, username: str, password: str) -> str:
    """A user whose password 0.1.0 hashed with bcrypt, written straight into the table."""
    password_hash = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=4)).decode("ascii")
    with Session(client.app.state.engine) as session:  # type: ignore[attr-defined]
        session.add(User(username=username, password_hash=password_hash))
        session.commit()
    return password_hash


def login(client: TestClient, username: str, password: str) -> int:
    return client.post("/auth/token", json={"username": username, "password": password}).status_code


def test_new_passwords_are_argon2id_with_the_configured_parameters(client: TestClient) -> None:
    assert client.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
    password_hash = stored_hash(client, "alice")
    assert password_hash.startswith("$argon2id$v=19$m=8,t=1,p=1$"), password_hash
    assert PASSWORD not in password_hash


def test_a_bcrypt_hash_verifies_and_becomes_argon2id_at_the_next_login(client: TestClient) -> None:
    old_hash = add_user_as_an_earlier_release(client, "alice", PASSWORD)
    assert login(client, "alice", "not the password") == 401
    assert stored_hash(client, "alice") == old_hash, "a failed login changes nothing"

    assert login(client, "alice", PASSWORD) == 200
    new_hash = stored_hash(client, "alice")
    assert new_hash.startswith("$argon2id$"), new_hash
    # The upgraded hash is the same password: it logs in, and the wrong one still does not.
    assert login(client, "alice", PASSWORD) == 200
    assert login(client, "alice", "not the password") == 401
    assert stored_hash(client, "alice") == new_hash, "a current hash is not rehashed at every login"


def test_a_refused_upgrade_write_still_logs_the_user_in(client: TestClient) -> None:
    """The password was right: a database that refuses the upgrade's UPDATE must not make it a 500."""
    old_hash = add_user_as_an_earlier_release(client, "alice", PASSWORD)
    engine = client.app.state.engine  # type: ignore[attr-defined]

    def refuse_writes(_conn: object, _cursor: object, statement: str, *_args: object) -> None:
        if statement.lstrip().upper().startswith("UPDATE"):
            raise OperationalError(statement, {}, Exception("cannot execute UPDATE in a read-only transaction"))

    event.listen(engine, "before_cursor_execute", refuse_writes)
    try:
        assert login(client, "alice", PASSWORD) == 200
    finally:
        event.remove(engine, "before_cursor_execute", refuse_writes)
    assert stored_hash(client, "alice") == old_hash, "kept for the next login to upgrade"
    assert login(client, "alice", PASSWORD) == 200
    assert stored_hash(client, "alice").startswith("$argon2id$")


def test_a_hash_of_weaker_parameters_is_rehashed_at_the_next_login(database_url: str, settings: Settings) -> None:
    with TestClient(create_app(make_settings(database_url))) as client:
        assert client.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
    stronger = make_settings(database_url, password_hash_memory_kib=64, password_hash_time_cost=2)
    with TestClient(create_app(stronger)) as client:
        assert login(client, "alice", PASSWORD) == 200
        assert stored_hash(client, "alice").startswith("$argon2id$v=19$m=64,t=2,p=1$")


def test_a_bcrypt_hash_of_a_72_byte_password_verifies(client: TestClient) -> None:
    password = "é" * (BCRYPT_MAX_BYTES // 2)  # 36 characters, 72 bytes: bcrypt's whole input
    add_user_as_an_earlier_release(client, "alice", password)
    assert login(client, "alice", password[:-1] + "e") == 401, "every one of the 72 bytes counts"
    assert login(client, "alice", password) == 200
    assert stored_hash(client, "alice").startswith("$argon2id$")
    assert login(client, "alice", password) == 200


def test_a_bcrypt_hash_never_matches_a_longer_password() -> None:
    """bcrypt 5 raises past 72 bytes, older ones cut the rest off: neither may log anyone in."""
    password = "a" * BCRYPT_MAX_BYTES
    bcrypt_hash = bcrypt.hashpw(password.encode(), bcrypt.gensalt(rounds=4)).decode()
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=8, parallelism=1)
    assert verify_password(hasher, password, bcrypt_hash)
    assert not verify_password(hasher, password + "-and-more", bcrypt_hash)


@pytest.fixture
def bundle(tmp_path: Path) -> Path:
    """The RDS CA bundle prod requires (RUN-2); its content is not read by the settings."""
    path = tmp_path / "global-bundle.pem"
    path.write_text("-----BEGIN CERTIFICATE-----\n")
    return path


def deployed_settings(bundle: Path, **overrides: Any) -> Settings:
    """Settings as a dev or prod pod gets them (prod unless `environment` says otherwise)."""
    values: dict[str, Any] = {
        "environment": "prod",
        "database_url": PG_URL,
        "database_ssl_root_cert": bundle,
        "secret_key": SecretStr("x" * 40),
        **overrides,
    }
    return Settings(_env_file=None, **values)


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize(("memory_kib", "time_cost"), [(8, 1), (19455, 2), (19456, 1), (47103, 1), (7167, 9)])
def test_refuses_to_start_below_the_owasp_minimum(
    environment: str, memory_kib: int, time_cost: int, bundle: Path
) -> None:
    with pytest.raises(ValidationError, match="OWASP minimum"):
        deployed_settings(
            bundle, environment=environment, password_hash_memory_kib=memory_kib, password_hash_time_cost=time_cost
        )


@pytest.mark.parametrize(("memory_kib", "time_cost"), [(19456, 2), (47104, 1), (12288, 3), (9216, 4), (7168, 5)])
def test_every_row_of_the_owasp_table_is_accepted(memory_kib: int, time_cost: int, bundle: Path) -> None:
    settings = deployed_settings(bundle, password_hash_memory_kib=memory_kib, password_hash_time_cost=time_cost)
    assert settings.password_hash_parallelism == 1


def test_the_default_is_the_owasp_recommendation(bundle: Path) -> None:
    settings = deployed_settings(bundle)
    assert (settings.password_hash_memory_kib, settings.password_hash_time_cost) == (19 * 1024, 2)
    assert settings.password_hash_parallelism == 1
