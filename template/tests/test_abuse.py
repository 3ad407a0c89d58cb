"""A hostile client (RUN-2): floods, name guessing, and error bodies that could leak a secret."""

import statistics
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.security import cpu_budget
from app.main import create_app
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"
# A value that appears nowhere else, so finding it in an answer means it was echoed.
CANARY = "Zq9-canary-7Wv"


def client_for(settings: Settings) -> Iterator[TestClient]:
    with TestClient(create_app(settings)) as client:
        yield client


# --- 422 bodies ---------------------------------------------------------------------------------


def body_routes(app: FastAPI) -> list[tuple[str, str, list[str]]]:
    """(method, path, body fields) of every route that takes a JSON body, from the OpenAPI document."""
    document = app.openapi()
    found = []
    for path, operations in document["paths"].items():
        for method, operation in operations.items():
            content = operation.get("requestBody", {}).get("content", {}).get("application/json")
            if content:
                name = content["schema"]["$ref"].rsplit("/", 1)[-1]
                found.append((method.upper(), path, list(document["components"]["schemas"][name]["properties"])))
    return found


def hostile_bodies(fields: list[str]) -> list[object]:
    """Bodies that fail validation while carrying the canary in a secret field, or as a whole."""
    secrets = [f for f in fields if "password" in f]
    assert secrets, "every body route here carries a password"
    valid = {f: "alice" for f in fields}
    bodies: list[object] = []
    for secret in secrets:
        bodies += [
            {**valid, secret: CANARY[:5]},  # too short (for a new password)
            {**valid, secret: CANARY + "é" * 40},  # over 72 bytes
            {**valid, secret: [CANARY]},  # wrong type
            {**valid, "username": 12345, secret: CANARY + "-long-enough"},  # another field wrong
            {**valid, "username": "a b", secret: CANARY + "-long-enough"},  # another field invalid
            {secret: CANARY + "-long-enough"},  # a field missing
            [{secret: CANARY}],  # not an object at all
            CANARY,
        ]
    return bodies


def test_validation_errors_never_echo_a_secret(client: TestClient) -> None:
    routes = body_routes(client.app)  # type: ignore[arg-type]
    assert {path for _, path, _ in routes} >= {"/users", "/auth/token"}
    for method, path, fields in routes:
        for body in hostile_bodies(fields):
            response = client.request(method, path, json=body)
            assert CANARY not in response.text, f"{path} echoed a secret for {body!r}: {response.text}"
            if response.status_code == 401:  # a short password is a valid login attempt
                continue
            assert response.status_code == 422, (path, body, response.text)
            for error in response.json()["detail"]:
                assert error["loc"], error  # the field
                assert error["msg"], error  # and a message a person reads


def test_validation_errors_still_say_what_is_wrong(client: TestClient) -> None:
    short = client.post("/users", json={"username": "alice", "password": "short"}).json()["detail"]
    assert [(e["loc"], e["msg"]) for e in short] == [(["body", "password"], "String should have at least 8 characters")]
    name = client.post("/users", json={"username": "a b", "password": PASSWORD}).json()["detail"]
    assert name[0]["loc"] == ["body", "username"]
    assert name[0]["input"] == "a b", "a name may be echoed"


# --- rate limits ----------------------------------------------------------------------------------


@pytest.fixture
def limited(database_url: str, settings: Settings) -> Iterator[TestClient]:
    yield from client_for(
        make_settings(
            database_url,
            rate_limit_login_per_client="3/2 seconds",
            rate_limit_login_per_username="5/2 seconds",
            rate_limit_signup_per_client="2/2 seconds",
        )
    )


def login(client: TestClient, username: str = "alice", forwarded_for: str | None = None) -> int:
    headers = {"X-Forwarded-For": forwarded_for} if forwarded_for else {}
    return client.post("/auth/token", json={"username": username, "password": PASSWORD}, headers=headers).status_code


def test_login_limit_per_client_answers_429_then_recovers(limited: TestClient) -> None:
    assert limited.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
    assert [login(limited) for _ in range(3)] == [200, 200, 200]
    response = limited.post("/auth/token", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 429, response.text
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 2
    assert "Too many requests" in response.json()["detail"]
    time.sleep(retry_after + 0.2)
    assert login(limited) == 200, "the limit must lift once the window has passed"


def test_login_limit_per_username_holds_across_clients(limited: TestClient) -> None:
    statuses = [login(limited, "victim", forwarded_for=f"203.0.113.{i}") for i in range(7)]
    assert statuses == [401] * 5 + [429] * 2, "guessing one account's password from many addresses is limited"


def test_client_cannot_dodge_the_limit_with_a_forged_forwarded_for(limited: TestClient) -> None:
    # The load balancer appends the address it saw; what the client wrote before it is ignored.
    statuses = [login(limited, f"user{i}", forwarded_for=f"10.0.0.{i}, 198.51.100.7") for i in range(4)]
    assert statuses == [401, 401, 401, 429]


def test_signup_limit_per_client(limited: TestClient) -> None:
    statuses = [
        limited.post("/users", json={"username": f"user{i}", "password": PASSWORD}).status_code for i in range(3)
    ]
    assert statuses == [201, 201, 429]


def test_malformed_limit_refuses_to_start(database_url: str) -> None:
    with pytest.raises(ValueError, match="twenty a minute"):
        create_app(make_settings(database_url, rate_limit_login_per_client="twenty a minute"))


# --- enumeration ----------------------------------------------------------------------------------


def test_unknown_user_and_wrong_password_are_indistinguishable(database_url: str, settings: Settings) -> None:
    """Same status, same body, and the same time within 30 % (bcrypt cost 10, about 60 ms here)."""
    for client in client_for(make_settings(database_url, bcrypt_rounds=10, rate_limit_login_per_client="1000/minute")):
        assert client.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
        timings: dict[str, list[float]] = {"unknown": [], "wrong": []}
        answers: dict[str, set[tuple[int, str]]] = {"unknown": set(), "wrong": set()}
        for _ in range(7):
            for case, username in (("unknown", "nobody-by-that-name"), ("wrong", "alice")):
                started = time.perf_counter()
                response = client.post("/auth/token", json={"username": username, "password": "not the password"})
                timings[case].append(time.perf_counter() - started)
                answers[case].add((response.status_code, response.text))
        assert answers["unknown"] == answers["wrong"] == {(401, '{"detail":"Wrong username or password"}')}
        ratio = statistics.median(timings["unknown"]) / statistics.median(timings["wrong"])
        assert 0.7 <= ratio <= 1.3, f"an unknown name answers in {ratio:.2f}x the time of a wrong password"


def test_signup_of_a_taken_name_costs_the_same_hash(client: TestClient) -> None:
    assert client.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
    taken = client.post("/users", json={"username": "alice", "password": PASSWORD})
    assert taken.status_code == 409
    assert "taken" in taken.json()["detail"]


# --- the hashing pool ------------------------------------------------------------------------------


def test_hash_workers_follow_the_cpu_limit(tmp_path) -> None:  # type: ignore[no-untyped-def]
    cpu_max = tmp_path / "cpu.max"
    cpu_max.write_text("50000 100000\n")  # a 500m limit
    assert cpu_budget(cpu_max) == 1
    cpu_max.write_text("max 100000\n")  # no limit: the CPUs the process may run on
    assert cpu_budget(cpu_max) >= 1
    assert cpu_budget(tmp_path / "absent") >= 1
