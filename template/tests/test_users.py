from datetime import UTC, datetime, timedelta
from pathlib import Path

import jwt
import pytest
from fastapi import Depends
from fastapi.testclient import TestClient

from app.api.deps import CurrentUser, current_user
from app.main import create_app
from app.schemas.user import UserRead
from tests.conftest import TEST_SECRET_KEY, make_settings

PASSWORD = "correct horse battery staple"


def register(client: TestClient, username: str = "alice", password: str = PASSWORD) -> None:
    response = client.post("/users", json={"username": username, "password": password})
    assert response.status_code == 201, response.text


def login(client: TestClient, username: str = "alice", password: str = PASSWORD) -> str:
    response = client.post("/auth/token", json={"username": username, "password": password})
    assert response.status_code == 200, response.text
    token: str = response.json()["access_token"]
    return token


def me(client: TestClient, token: str) -> int:
    return client.get("/users/me", headers={"Authorization": f"Bearer {token}"}).status_code


def test_register_login_and_read_me(client: TestClient) -> None:
    register(client)
    token = login(client)
    response = client.get("/users/me", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    body = response.json()
    assert body["username"] == "alice"
    assert "password" not in str(body)


def test_created_at_carries_its_timezone(client: TestClient) -> None:
    # SQLite keeps no offset: read back from the database, the time must still say it is UTC.
    register(client)
    response = client.get("/users/me", headers={"Authorization": f"Bearer {login(client)}"})
    created_at = datetime.fromisoformat(response.json()["created_at"])
    assert created_at.utcoffset() == timedelta(0), response.json()["created_at"]
    assert abs(datetime.now(UTC) - created_at) < timedelta(minutes=1)


def test_duplicate_username_is_409(client: TestClient) -> None:
    register(client)
    response = client.post("/users", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 409
    assert "taken" in response.json()["detail"]


def test_wrong_password_is_401(client: TestClient) -> None:
    register(client)
    response = client.post("/auth/token", json={"username": "alice", "password": "not the password"})
    assert response.status_code == 401
    assert response.json()["detail"] == "Wrong username or password"


def test_unknown_user_is_401(client: TestClient) -> None:
    response = client.post("/auth/token", json={"username": "nobody", "password": PASSWORD})
    assert response.status_code == 401


@pytest.mark.parametrize("path", ["/users", "/auth/token"])
def test_password_over_72_bytes_is_422(client: TestClient, path: str) -> None:
    # 37 two-byte characters: 74 bytes, although only 37 characters.
    response = client.post(path, json={"username": "alice", "password": "é" * 37})
    assert response.status_code == 422
    assert "72 bytes" in response.text


def test_password_of_72_bytes_is_accepted(client: TestClient) -> None:
    register(client, password="é" * 36)
    login(client, password="é" * 36)


@pytest.mark.parametrize(
    "body",
    [{}, {"username": "al", "password": PASSWORD}, {"username": "alice", "password": "short"}, {"username": "a b c"}],
)
def test_malformed_registration_is_422(client: TestClient, body: dict[str, str]) -> None:
    assert client.post("/users", json=body).status_code == 422


def test_me_without_token_is_401(client: TestClient) -> None:
    response = client.get("/users/me")
    assert response.status_code == 401
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize(
    "authorization",
    ["", "Bearer", "Bearer ", "Basic {token}", "Token {token}", "{token}", "Bearer{token}", "Bearer {token}x"],
)
def test_anything_but_a_valid_bearer_token_is_401(client: TestClient, authorization: str) -> None:
    register(client)
    token = login(client)
    response = client.get("/users/me", headers={"Authorization": authorization.format(token=token)})
    assert response.status_code == 401, response.text
    assert response.headers["www-authenticate"] == "Bearer"


@pytest.mark.parametrize("authorization", ["Bearer {token}", "bearer {token}", "BEARER {token}", "Bearer  {token} "])
def test_the_bearer_scheme_is_read_as_http_bearer_reads_it(client: TestClient, authorization: str) -> None:
    # RFC 9110: the scheme is case-insensitive; FastAPI's HTTPBearer strips the token.
    register(client)
    token = login(client)
    assert client.get("/users/me", headers={"Authorization": authorization.format(token=token)}).status_code == 200


def test_the_schema_shows_the_bearer_scheme_on_me(client: TestClient) -> None:
    # /docs offers its "Authorize" button from these two entries.
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"] == {"HTTPBearer": {"type": "http", "scheme": "bearer"}}
    assert schema["paths"]["/users/me"]["get"]["security"] == [{"HTTPBearer": []}]
    assert "security" not in schema["paths"]["/auth/token"]["post"]


def ours(client: TestClient) -> dict[str, str]:
    """The issuer and audience this service's tokens carry, so each test below fails for its own reason."""
    settings = client.app.state.settings  # type: ignore[attr-defined]
    return {"iss": settings.jwt_issuer, "aud": settings.jwt_audience}


def test_expired_token_is_401(client: TestClient) -> None:
    register(client)
    past = datetime.now(UTC) - timedelta(hours=2)
    claims = {"sub": "alice", "iat": past, "exp": past + timedelta(minutes=5), **ours(client)}
    token = jwt.encode(claims, TEST_SECRET_KEY, "HS256")
    assert me(client, token) == 401


def test_tampered_token_is_401(client: TestClient) -> None:
    register(client)
    header, payload, signature = login(client).split(".")
    forged = jwt.encode(
        {"sub": "admin", "iat": 0, "exp": 2**40}, "another key, long enough for HS256 but not ours", "HS256"
    ).split(".")[1]
    assert me(client, f"{header}.{forged}.{signature}") == 401
    assert me(client, f"{header}.{payload}.{signature[:-4]}AAAA") == 401


def test_alg_none_token_is_401(client: TestClient) -> None:
    register(client)
    now = datetime.now(UTC)
    unsigned = jwt.encode({"sub": "alice", "iat": now, "exp": now + timedelta(minutes=5)}, None, algorithm="none")
    assert me(client, unsigned) == 401


def test_token_without_exp_is_401(client: TestClient) -> None:
    register(client)
    token = jwt.encode({"sub": "alice", "iat": datetime.now(UTC), **ours(client)}, TEST_SECRET_KEY, "HS256")
    assert me(client, token) == 401


def test_token_of_deleted_or_unknown_user_is_401(client: TestClient) -> None:
    now = datetime.now(UTC)
    claims = {"sub": "ghost", "iat": now, "exp": now + timedelta(minutes=5), **ours(client)}
    token = jwt.encode(claims, TEST_SECRET_KEY, "HS256")
    assert me(client, token) == 401


@pytest.mark.parametrize("claim", ["iss", "aud"])
def test_token_for_another_service_or_from_another_issuer_is_401(client: TestClient, claim: str) -> None:
    register(client)
    now = datetime.now(UTC)
    valid = {"sub": "alice", "iat": now, "exp": now + timedelta(minutes=5), **ours(client)}
    assert me(client, jwt.encode(valid, TEST_SECRET_KEY, "HS256")) == 200, "the control token must pass"
    assert me(client, jwt.encode({**valid, claim: "another-service"}, TEST_SECRET_KEY, "HS256")) == 401
    del valid[claim]
    assert me(client, jwt.encode(valid, TEST_SECRET_KEY, "HS256")) == 401


def test_schema_is_not_served_in_production(database_url: str, tmp_path: Path) -> None:
    bundle = tmp_path / "global-bundle.pem"  # prod connects to PostgreSQL with verified TLS only (RUN-2)
    bundle.write_text("-----BEGIN CERTIFICATE-----\n")
    for environment, expected in (("dev", 200), ("prod", 404)):
        settings = make_settings(database_url, environment=environment, database_ssl_root_cert=bundle)
        with TestClient(create_app(settings)) as client:
            assert client.get("/openapi.json").status_code == expected, environment
            assert client.get("/docs").status_code == expected, environment


def test_the_current_user_is_read_once_and_can_be_overridden(client: TestClient) -> None:
    app = client.app
    reads: list[int] = []

    async def fake_user() -> UserRead:
        reads.append(1)
        return UserRead(id=7, username="fake", created_at=datetime.now(UTC))

    @app.get("/twice", dependencies=[Depends(current_user)])  # type: ignore[attr-defined,untyped-decorator]
    async def twice(user: CurrentUser) -> UserRead:
        return user

    app.dependency_overrides[current_user] = fake_user  # type: ignore[attr-defined]
    try:
        assert client.get("/users/me").json()["username"] == "fake"
        reads.clear()
        assert client.get("/twice").status_code == 200
        assert reads == [1]  # a router's dependency and the route's parameter share one read
    finally:
        app.dependency_overrides.clear()  # type: ignore[attr-defined]


def test_a_json_body_sent_as_another_content_type_is_refused(client: TestClient) -> None:
    # FastAPI's strict_content_type, left at its default: a body is read as JSON only when it says so.
    body = '{"username": "someone", "password": "correct-horse-battery"}'
    response = client.post("/users", content=body, headers={"content-type": "text/plain"})
    assert response.status_code == 422, response.text
