import json
import os
import subprocess
import sys
from datetime import timedelta
from pathlib import Path

import pytest
from pydantic import SecretStr, ValidationError

from app.core.config import DEFAULT_SECRET_KEY, MIN_SECRET_KEY_LENGTH, Settings
from app.core.security import create_access_token, decode_access_token

PROJECT_ROOT = Path(__file__).resolve().parent.parent
PG_URL = "postgresql+psycopg://u:p@db:5432/app"


@pytest.mark.parametrize("environment", ["dev", "prod"])
@pytest.mark.parametrize("secret_key", [DEFAULT_SECRET_KEY, "", "too-short"])
def test_refuses_to_start_without_a_real_secret_key(environment: str, secret_key: str) -> None:
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None, environment=environment, database_url=PG_URL, secret_key=SecretStr(secret_key))  # type: ignore[call-arg]


def test_refuses_missing_secret_key_in_production(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SECRET_KEY", raising=False)
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("DATABASE_URL", PG_URL)
    with pytest.raises(ValidationError, match="SECRET_KEY"):
        Settings(_env_file=None)  # type: ignore[call-arg]


def test_reads_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    monkeypatch.setenv("ENVIRONMENT", "prod")
    monkeypatch.setenv("SECRET_KEY", "x" * 40)
    monkeypatch.setenv("DATABASE_URL", "postgresql+psycopg://u:p@db:5432/app")
    monkeypatch.setenv("DATABASE_SSL_ROOT_CERT", str(bundle))
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    assert settings.environment == "prod"
    assert settings.database_url.startswith("postgresql+psycopg://u:p@db:5432/app?")


@pytest.mark.parametrize("environment", ["local", "test"])
def test_local_default_runs_without_a_server(environment: str) -> None:
    settings = Settings(_env_file=None, environment=environment)  # type: ignore[call-arg]
    assert settings.database_url.startswith("sqlite")


def start(env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    """Import the application as uvicorn does, in a clean environment, from a folder without .env."""
    return subprocess.run(
        [sys.executable, "-c", "import app.main"],
        cwd=PROJECT_ROOT,
        env={"PATH": os.environ["PATH"], "PYTHONPATH": str(PROJECT_ROOT), **env},
        capture_output=True,
        text=True,
        check=False,
        timeout=60,
    )


@pytest.mark.parametrize(
    ("env", "missing"),
    [
        ({}, "ENVIRONMENT is not set"),
        ({"ENVIRONMENT": "prod", "SECRET_KEY": "x" * 40}, "DATABASE_URL must be set when ENVIRONMENT=prod"),
        ({"ENVIRONMENT": "dev", "SECRET_KEY": "x" * 40}, "DATABASE_URL must be set when ENVIRONMENT=dev"),
        ({"ENVIRONMENT": "prod", "DATABASE_URL": PG_URL}, "SECRET_KEY must be set"),
        ({"ENVIRONMENT": "staging"}, "ENVIRONMENT: Input should be"),
        (
            {"ENVIRONMENT": "prod", "SECRET_KEY": "x" * 40, "DATABASE_URL": PG_URL},
            "DATABASE_SSL_ROOT_CERT must be set when ENVIRONMENT=prod",
        ),
        (
            {"ENVIRONMENT": "prod", "SECRET_KEY": "x" * 40, "DATABASE_URL_FILE": "/nonexistent/db/url"},
            "DATABASE_URL_FILE cannot be read",
        ),
    ],
)
def test_refuses_to_start_naming_the_missing_setting(env: dict[str, str], missing: str, tmp_path: Path) -> None:
    proc = start({"HOME": str(tmp_path), **env})
    assert proc.returncode == 1, proc.stderr
    lines = [json.loads(line) for line in proc.stderr.splitlines() if line.startswith("{")]
    assert any(missing in line["message"] for line in lines), proc.stderr
    assert "Traceback" not in proc.stderr, "one line a setting, not a traceback"
    assert "x" * 40 not in proc.stderr, "a refused setting's value is never printed"


def test_starts_with_every_setting(tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"  # RUN-2: the RDS CA bundle the image carries
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    proc = start(
        {
            "HOME": str(tmp_path),
            "ENVIRONMENT": "prod",
            "DATABASE_URL": PG_URL,
            "SECRET_KEY": "x" * 40,
            "DATABASE_SSL_ROOT_CERT": str(bundle),
        }
    )
    assert proc.returncode == 0, proc.stderr


def test_local_default_key_signs_without_a_warning() -> None:
    # pytest turns warnings into errors here: PyJWT's InsecureKeyLengthWarning would fail this test,
    # as it would print on every token a local run signs.
    assert len(DEFAULT_SECRET_KEY.encode()) >= MIN_SECRET_KEY_LENGTH
    claims = {"issuer": "orders", "audience": "orders-api"}
    token = create_access_token("alice", DEFAULT_SECRET_KEY, timedelta(minutes=1), **claims)
    assert decode_access_token(token, DEFAULT_SECRET_KEY, **claims) == "alice"
