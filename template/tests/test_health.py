import gc
import threading
import time

import anyio.to_thread
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.main import create_app
from tests.conftest import make_settings


def test_health_is_ok(client: TestClient) -> None:
    response = client.get("/health")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_ready_when_database_answers(client: TestClient) -> None:
    response = client.get("/ready")
    assert response.status_code == 200
    assert response.json() == {"status": "ready"}


def test_ready_is_503_but_health_200_when_database_is_unreachable() -> None:
    # Port 9 on loopback: nothing listens, the connection is refused at once.
    app = create_app(make_settings("postgresql+psycopg://nobody:nothing@127.0.0.1:9/none"))
    with TestClient(app) as client:
        ready = client.get("/ready")
        assert ready.status_code == 503
        assert ready.json() == {"status": "unavailable", "reason": "database unreachable"}
        assert client.get("/health").status_code == 200


def test_every_response_carries_a_request_id(client: TestClient) -> None:
    generated = client.get("/health").headers["x-request-id"]
    assert len(generated) == 32
    assert client.get("/health", headers={"X-Request-ID": "trace-42"}).headers["x-request-id"] == "trace-42"
    forged = client.get("/health", headers={"X-Request-ID": "bad id\nwith newline"}).headers["x-request-id"]
    assert forged != "bad id\nwith newline"


def test_ready_does_not_wait_for_the_servers_thread_pool(app: FastAPI) -> None:
    """Requests that hold every thread of the server's pool do not hold up /ready (RUN-2)."""
    release = threading.Event()

    async def one_thread_only() -> None:
        anyio.to_thread.current_default_thread_limiter().total_tokens = 1

    def hold_the_thread() -> None:
        release.wait(10)

    app.add_api_route("/one-thread-only", one_thread_only)
    app.add_api_route("/hold", hold_the_thread)
    with TestClient(app) as client:
        client.get("/one-thread-only")
        holder = threading.Thread(target=client.get, args=("/hold",))
        holder.start()
        try:
            time.sleep(0.2)  # the only thread is taken
            answers: list[int] = []
            probe = threading.Thread(target=lambda: answers.append(client.get("/ready").status_code))
            probe.start()
            probe.join(timeout=5)
            assert answers == [200], "/ready waited for the server's thread pool"
        finally:
            release.set()
            holder.join()


def test_the_objects_made_at_startup_are_frozen_while_the_app_runs(database_url: str) -> None:
    # Out of the collector's way while the server runs (app/main.py), handed back at shutdown.
    app = create_app(make_settings(database_url))
    with TestClient(app) as client:
        assert client.get("/health").status_code == 200
        assert gc.get_freeze_count() > 10_000
        # Frozen last, once the lifespan has made its pools: the collector no longer lists them.
        made = [app, app.state.hasher, app.state.limiter, app.state.read_pool, app.state.users_by_name]
        tracked = {id(thing) for thing in gc.get_objects()}
        assert [thing for thing in made if thing is not None and id(thing) in tracked] == []
    assert gc.get_freeze_count() == 0
