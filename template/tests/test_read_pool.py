"""The authenticated read on psycopg's asyncio pool (issue 16): no thread hop, same outage and failover answers."""

import asyncio
import contextlib
import secrets
import time
from datetime import timedelta

import psycopg
import pytest
from alembic import command
from fastapi.testclient import TestClient
from sqlalchemy import create_engine, make_url, text

from app.api import deps
from app.core.config import Settings
from app.core.security import create_access_token
from app.db.session import create_read_pool, read_connection
from app.main import create_app
from tests.conftest import TEST_SECRET_KEY, alembic_config, make_settings
from tests.test_database_roles import PASSWORD as ROLES_PASSWORD
from tests.test_database_roles import cut_connections, refused, role_url, roles, serving  # noqa: F401 (fixtures)
from tests.test_errors import closed_port
from tests.test_users import login, me, register

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_settings(pg_url: str) -> Settings:
    command.upgrade(alembic_config(pg_url), "head")
    return make_settings(pg_url)


def test_users_me_makes_no_hop_to_the_thread_pool(pg_settings: Settings, monkeypatch: pytest.MonkeyPatch) -> None:
    app = create_app(pg_settings)
    with TestClient(app) as client:
        register(client)
        bearer = login(client)

        def no_hop(*_args: object, **_kwargs: object) -> None:
            raise AssertionError("GET /users/me went to the thread pool")

        monkeypatch.setattr(deps, "run_in_threadpool", no_hop)
        assert me(client, bearer) == 200
        assert app.state.read_pool is not None


def test_users_me_in_a_database_outage_is_503_with_retry_after() -> None:
    settings = make_settings(f"postgresql+psycopg://nobody:nothing@127.0.0.1:{closed_port()}/none")
    bearer = create_access_token(
        "alice", TEST_SECRET_KEY, timedelta(minutes=5), issuer=settings.jwt_issuer, audience=settings.jwt_audience
    )
    with TestClient(create_app(settings)) as client:
        response = client.get("/users/me", headers={"Authorization": f"Bearer {bearer}"})
        assert client.get("/health").status_code == 200
    assert response.status_code == 503, response.text
    assert int(response.headers["retry-after"]) > 0
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_connections_the_server_closed_are_replaced_without_a_wait(pg_settings: Settings) -> None:
    # After a failover every pooled connection is dead: none may reach a query, and the request
    # must not wait out psycopg_pool's back-off (a second or more per failed check).
    with TestClient(create_app(pg_settings)) as client:
        register(client)
        bearer = login(client)
        assert me(client, bearer) == 200
        admin = create_engine(pg_settings.database_url)
        with admin.connect() as connection:
            pids = (
                connection.execute(
                    text("SELECT pid FROM pg_stat_activity WHERE usename = CURRENT_USER AND pid <> pg_backend_pid()")
                )
                .scalars()
                .all()
            )
            for pid in pids:
                connection.execute(text("SELECT pg_terminate_backend(:pid, 5000)"), {"pid": pid})
        admin.dispose()
        started = time.monotonic()
        assert me(client, bearer) == 200
        assert time.monotonic() - started < 0.9


def test_the_read_pool_falls_back_to_the_credentials_that_last_worked(request: pytest.FixtureRequest) -> None:
    # The rotation order of tests/test_database_roles.py: the file has the new password, PostgreSQL
    # not yet. The read pool's new connections must open as the engine's do.
    master, _, app_url = request.getfixturevalue("roles")
    client, url_file = request.getfixturevalue("serving")
    bearer = login(client, "dave", ROLES_PASSWORD)
    assert me(client, bearer) == 200
    rotated = role_url(master, "app", secrets.token_hex(16))
    url_file.write_text(rotated)
    cut_connections(master, app_url)
    assert refused(rotated), "PostgreSQL does not know the new password yet: the test proves something"
    assert me(client, bearer) == 200


def test_the_first_request_after_an_outage_reconnects(pg_url: str) -> None:
    """After a failover the read pool must not keep answering 503 while a back-off runs its course."""
    target = make_url(pg_url)

    async def scenario() -> float:
        links: set[asyncio.StreamWriter] = set()

        async def pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
            with contextlib.suppress(OSError):
                while data := await reader.read(65536):
                    writer.write(data)
                    await writer.drain()
            writer.close()

        async def relay(client_reader: asyncio.StreamReader, client_writer: asyncio.StreamWriter) -> None:
            try:
                server_reader, server_writer = await asyncio.open_connection(target.host, target.port or 5432)
            except OSError:
                client_writer.close()
                return
            links.update({client_writer, server_writer})
            await asyncio.gather(pipe(client_reader, server_writer), pipe(server_reader, client_writer))

        # The database behind a relay this test can take down and bring back, as a failover does.
        relay_server = await asyncio.start_server(relay, "127.0.0.1", 0)
        port = relay_server.sockets[0].getsockname()[1]
        url = target.set(host="127.0.0.1", port=port).render_as_string(hide_password=False)
        pool = create_read_pool(url, 2, None, 2)
        assert pool is not None
        await pool.open(wait=True)
        relay_server.close()
        for writer in links:
            writer.close()

        async def read_until_it_works() -> float:
            while True:
                with contextlib.suppress(psycopg.OperationalError):
                    async with read_connection(pool) as connection:
                        await connection.execute("SELECT 1")
                    return time.monotonic()
                await asyncio.sleep(0.2)

        # Requests keep coming during the outage, as they do in production, and keep failing.
        reads = asyncio.create_task(read_until_it_works())
        await asyncio.sleep(17)  # long enough for psycopg_pool's back-off to reach 16 s between tries
        relay_server = await asyncio.start_server(relay, "127.0.0.1", port)
        back = time.monotonic()
        try:
            return await asyncio.wait_for(reads, timeout=30) - back
        finally:
            await pool.close()
            relay_server.close()
            for writer in links:
                writer.close()
                with contextlib.suppress(OSError):
                    await writer.wait_closed()
            await relay_server.wait_closed()

    waited = asyncio.run(scenario())
    assert waited < 4, f"the first read succeeded {waited:.1f} s after the database came back"
