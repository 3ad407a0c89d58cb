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
