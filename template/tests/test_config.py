from datetime import timedelta

import pytest
from pydantic import SecretStr, ValidationError

from app.core.config import DEFAULT_SECRET_KEY, MIN_SECRET_KEY_LENGTH, Settings
from app.core.security import create_access_token, decode_access_token


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("secret_key", [DEFAULT_SECRET_KEY, "", "too-short"])
def test_refuses_to_start_without_a_real_secret_key(environment: str, secret_key: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment=environment, secret_key=SecretStr(secret_key))  # type: ignore[call-arg]


def test_refuses_missing_secret_key_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "prod")
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@db:5432/app")
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment == "prod"
    assert settings.database_url == "postgresql+psycopg://u:p@db:5432/app"


def test_local_default_runs_without_a_server() -> None:
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.database_url.startswith("sqlite")


def test_local_default_key_signs_without_a_warning() -> None:
    # pytest turns warnings into errors here: PyJWT's InsecureKeyLengthWarning would fail this test,
    # as it would print on every token a local run signs.
    assert len(DEFAULT_SECRET_KEY.encode()) >= MIN_SECRET_KEY_LENGTH
    token = create_access_token("alice", DEFAULT_SECRET_KEY, timedelta(minutes=1))
    assert decode_access_token(token, DEFAULT_SECRET_KEY) == "alice"
