"""Verified TLS to the database (RUN-2): sslmode=verify-full against the RDS CA bundle outside local.

The last tests start a PostgreSQL server of their own with TLS on, signed by a throwaway CA, and
need the PostgreSQL server programs and openssl (they skip without them): libpq must connect when
the CA and the host name match, and refuse a server signed by another CA or named differently.
"""

import asyncio
import logging
import os
import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from psycopg_pool import PoolTimeout
from pydantic import ValidationError
from sqlalchemy import create_engine, make_url, text
from sqlalchemy.exc import OperationalError

from app.core.config import MigrationSettings
from app.db.session import create_db_engine, create_read_pool, read_connection
from tests.conftest import make_settings

PG_URL = "postgresql+psycopg://app:secret@db.example:5432/app"


def connect_args(url: str) -> dict[str, Any]:
    engine = create_db_engine(url, 3)
    _, params = engine.dialect.create_connect_args(engine.url)
    engine.dispose()
    return dict(params)


def test_prod_refuses_to_start_without_the_ca_bundle() -> None:
    with pytest.raises(ValidationError, match="DATABASE_SSL_ROOT_CERT must be set when ENVIRONMENT=prod"):
        make_settings(PG_URL, environment="prod")


def test_an_unreadable_bundle_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValidationError, match="DATABASE_SSL_ROOT_CERT cannot be read"):
        make_settings(PG_URL, environment="prod", database_ssl_root_cert=tmp_path / "missing.pem")


@pytest.mark.parametrize("environment", ["dev", "prod"])
def test_dev_and_prod_verify_the_server(environment: str, tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    # A URL asking for less cannot win: the settings set both options.
    settings = make_settings(PG_URL + "?sslmode=disable", environment=environment, database_ssl_root_cert=bundle)
    params = connect_args(settings.database_url)
    assert params["sslmode"] == "verify-full"
    assert params["sslrootcert"] == str(bundle)
    assert (params["host"], params["password"]) == ("db.example", "secret")


@pytest.mark.parametrize("environment", ["local", "test"])
def test_local_and_test_connect_as_the_url_says(environment: str, tmp_path: Path) -> None:
    settings = make_settings(PG_URL, environment=environment, database_ssl_root_cert=tmp_path / "ignored.pem")
    assert "sslmode" not in connect_args(settings.database_url)


def test_the_migration_verifies_the_server_when_the_pod_says_so(tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    settings = MigrationSettings(_env_file=None, database_url=PG_URL, database_ssl_root_cert=bundle)
    assert make_url(settings.database_url).query == {"sslmode": "verify-full", "sslrootcert": str(bundle)}


# --- A real server with TLS ------------------------------------------------------------------------


def postgres_bin() -> Path | None:
    for folder in sorted(Path("/usr/lib/postgresql").glob("*/bin"), reverse=True):
        if (folder / "initdb").exists():
            return folder
    found = shutil.which("initdb")
    return Path(found).parent if found else None


def run(argv: list[str], cwd: Path | None = None, check: bool = True) -> None:
    """The test's own fixed programs (openssl, initdb, pg_ctl), never input from outside."""
    subprocess.run(argv, cwd=cwd, check=check, capture_output=True)  # noqa: S603


def openssl(*args: str, cwd: Path) -> None:
    run([shutil.which("openssl") or "openssl", *args], cwd=cwd)


def make_ca(folder: Path, name: str) -> None:
    openssl(
        "req",
        "-x509",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-days",
        "2",
        "-subj",
        f"/CN={name}",
        "-keyout",
        f"{name}.key",
        "-out",
        f"{name}.pem",
        cwd=folder,
    )


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture(scope="module")
def tls_server() -> Iterator[tuple[int, Path, Path]]:
    """(port, CA that signed the server, another CA) of a PostgreSQL whose certificate names localhost."""
    bindir = postgres_bin()
    if bindir is None or shutil.which("openssl") is None:
        pytest.skip("needs the PostgreSQL server programs (initdb, pg_ctl) and openssl")
    # Not under pytest's folder: the server runs as postgres, which may not enter root's.
    root = Path(tempfile.mkdtemp(prefix="tls-pg-"))
    make_ca(root, "ca")
    make_ca(root, "rogue-ca")
    (root / "san.ext").write_text("subjectAltName = DNS:localhost\n")
    openssl(
        "req",
        "-newkey",
        "rsa:2048",
        "-nodes",
        "-subj",
        "/CN=localhost",
        "-keyout",
        "server.key",
        "-out",
        "server.csr",
        cwd=root,
    )
    openssl(
        "x509",
        "-req",
        "-in",
        "server.csr",
        "-CA",
        "ca.pem",
        "-CAkey",
        "ca.key",
        "-CAcreateserial",
        "-days",
        "2",
        "-extfile",
        "san.ext",
        "-out",
        "server.pem",
        cwd=root,
    )
    data = root / "data"
    as_postgres: list[str] = []
    if os.geteuid() == 0:  # PostgreSQL refuses to run as root
        as_postgres = [shutil.which("runuser") or "runuser", "-u", "postgres", "--"]
        shutil.chown(root, "postgres")
        for name in ("server.key", "server.pem"):
            shutil.chown(root / name, "postgres")
    (root / "server.key").chmod(0o600)
    (root / "pw").write_text("tls-test-password\n")
    if as_postgres:
        shutil.chown(root / "pw", "postgres")
    run(
        [
            *as_postgres,
            str(bindir / "initdb"),
            "-D",
            str(data),
            "-U",
            "tls",
            "--pwfile",
            str(root / "pw"),
            "-A",
            "scram-sha-256",
        ]
    )
    port = free_port()
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c ssl=on "
        f"-c ssl_cert_file={root / 'server.pem'} -c ssl_key_file={root / 'server.key'}"
    )
    run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-o", options, "-w", "-l", str(root / "log"), "start"])
    try:
        yield port, root / "ca.pem", root / "rogue-ca.pem"
    finally:
        run([*as_postgres, str(bindir / "pg_ctl"), "-D", str(data), "-m", "immediate", "stop"], check=False)
        shutil.rmtree(root, ignore_errors=True)


def server_says_ssl(url: str) -> bool:
    engine = create_engine(url)
    try:
        with engine.connect() as connection:
            return bool(connection.execute(text("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")).scalar())
    finally:
        engine.dispose()


def prod_url(host: str, port: int, bundle: Path) -> str:
    url = f"postgresql+psycopg://tls:tls-test-password@{host}:{port}/postgres"
    return make_settings(url, environment="prod", database_ssl_root_cert=bundle).database_url


def test_verify_full_connects_to_the_server_the_ca_signed(tls_server: tuple[int, Path, Path]) -> None:
    port, ca, _ = tls_server
    started = time.monotonic()
    assert server_says_ssl(prod_url("localhost", port, ca)), "the connection must be encrypted"
    assert time.monotonic() - started < 10


def test_verify_full_refuses_a_server_another_ca_signed(tls_server: tuple[int, Path, Path]) -> None:
    port, _, rogue = tls_server
    with pytest.raises(OperationalError, match="certificate verify failed"):
        server_says_ssl(prod_url("localhost", port, rogue))


def test_verify_full_refuses_a_certificate_for_another_host(tls_server: tuple[int, Path, Path]) -> None:
    port, ca, _ = tls_server
    with pytest.raises(OperationalError, match="does not match host name"):
        server_says_ssl(prod_url("127.0.0.1", port, ca))


def read_pool_says_ssl(url: str) -> bool:
    """Whether the asyncio pool of the authenticated read (issue 16) gets an encrypted connection."""

    async def ask() -> bool:
        pool = create_read_pool(url, 3, None, 1)
        assert pool is not None
        try:
            await pool.open(wait=True, timeout=5)
            async with read_connection(pool) as connection:
                cursor = await connection.execute("SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()")
                row = await cursor.fetchone()
            return bool(row and row[0])
        finally:
            await pool.close()

    return asyncio.run(ask())


def test_the_read_pool_verifies_the_server_too(tls_server: tuple[int, Path, Path]) -> None:
    port, ca, _ = tls_server
    assert read_pool_says_ssl(prod_url("localhost", port, ca)), "the connection must be encrypted"


def test_the_read_pool_refuses_a_server_another_ca_signed(
    tls_server: tuple[int, Path, Path], caplog: pytest.LogCaptureFixture
) -> None:
    port, _, rogue = tls_server
    with caplog.at_level(logging.WARNING, logger="psycopg.pool"), pytest.raises(PoolTimeout):
        read_pool_says_ssl(prod_url("localhost", port, rogue))
    assert "certificate verify failed" in caplog.text
