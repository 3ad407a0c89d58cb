"""A hostile client (RUN-2): floods, name guessing, and error bodies that could leak a secret."""

import asyncio
import os
import statistics
import threading
import time
from collections.abc import Iterator

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from app.core.config import Settings
from app.core.errors import _public
from app.core.rate_limit import RateLimiter
from app.core.security import HASH_THREAD_NICENESS, OverloadedError, PasswordHasher, argon2id, cpu_budget
from app.main import create_app
from tests.conftest import make_settings

PASSWORD = "correct horse battery staple"
CHEAPEST = argon2id(memory_kib=8, time_cost=1, parallelism=1)
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


def start_of_a_window(monkeypatch: pytest.MonkeyPatch, seconds: int) -> None:
    """Moves the wall clock to just after the start of a `seconds` long window.

    The sliding-window counter aligns its windows on the epoch, weighs the previous window's hits by
    the share of the current window still to come, and floors the sum (limits/aio/storage/memory.py,
    acquire_sliding_window_entry): a burst that straddles a window's end gets one more hit through
    than the limit. A test that counts hits exactly therefore starts at a window's start, or it
    fails whenever the machine's clock puts a boundary inside it.
    """
    real = time.time
    offset = seconds - real() % seconds + 0.001
    monkeypatch.setattr(time, "time", lambda: real() + offset)


@pytest.fixture
def limited(database_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch) -> Iterator[TestClient]:
    start_of_a_window(monkeypatch, 60)
    yield from client_for(
        make_settings(
            database_url,
            # Windows of a minute that start with the test: a test takes a second, so the count is exact.
            rate_limit_login_per_client="4/minute",
            rate_limit_login_failures_per_client_and_username="2/minute",
            rate_limit_login_failures_per_username="3/minute",
            rate_limit_signup_per_client="2/minute",
        )
    )


def login(client: TestClient, username: str = "alice", password: str = PASSWORD, via: str | None = None) -> int:
    headers = {"X-Forwarded-For": via} if via else {}
    return client.post("/auth/token", json={"username": username, "password": password}, headers=headers).status_code


def test_login_limit_per_client_answers_429(limited: TestClient) -> None:
    assert limited.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
    assert [login(limited) for _ in range(4)] == [200, 200, 200, 200]
    response = limited.post("/auth/token", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 429, response.text
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert "Too many requests" in response.json()["detail"]


def test_login_limit_lifts_once_the_window_has_passed(
    database_url: str, settings: Settings, monkeypatch: pytest.MonkeyPatch
) -> None:
    for client in client_for(make_settings(database_url, rate_limit_login_per_client="2/3 seconds")):
        assert client.post("/users", json={"username": "alice", "password": PASSWORD}).status_code == 201
        # A 3 s window that starts with the logins: three fit in it even on a loaded machine, so the
        # third is refused.
        start_of_a_window(monkeypatch, 3)
        statuses = [login(client) for _ in range(3)]
        assert 429 in statuses, statuses
        refused = client.post("/auth/token", json={"username": "alice", "password": PASSWORD})
        retry_after = int(refused.headers.get("Retry-After", "3"))
        deadline = time.monotonic() + retry_after + 4  # the previous window's weight fades over one window
        while login(client) != 200:
            assert time.monotonic() < deadline, "the limit must lift once the window has passed"
            time.sleep(0.2)


def test_guessing_one_account_from_one_address_is_limited(limited: TestClient) -> None:
    assert limited.post("/users", json={"username": "victim", "password": PASSWORD}).status_code == 201
    wrong = [login(limited, "victim", "guess", via="203.0.113.9") for _ in range(3)]
    assert wrong == [401, 401, 429]
    assert login(limited, "victim", via="203.0.113.9") == 429, "even the right password, from that address"


def test_an_attacker_cannot_lock_the_user_out(limited: TestClient) -> None:
    """Failures from one address do not stop the user's right password from another (no lockout)."""
    assert limited.post("/users", json={"username": "victim", "password": PASSWORD}).status_code == 201
    assert [login(limited, "VICTIM", "guess", via="203.0.113.9") for _ in range(3)] == [401, 401, 429]
    assert login(limited, "victim", via="198.51.100.7") == 200


def test_guessing_one_account_from_many_addresses_is_limited(limited: TestClient) -> None:
    statuses = [login(limited, "victim", "guess", via=f"203.0.113.{i}") for i in range(5)]
    assert statuses == [401, 401, 401, 429, 429], "failures per username count across addresses"


def test_client_cannot_dodge_the_limit_with_a_forged_forwarded_for(limited: TestClient) -> None:
    # The load balancer appends the address it saw; what the client wrote before it is ignored,
    # in the same line or in a header line of its own.
    forged = [login(limited, f"user{i}", via=f"10.0.0.{i}, 198.51.100.7") for i in range(3)]
    extra_line = [
        limited.post(
            "/auth/token",
            json={"username": f"other{i}", "password": PASSWORD},
            headers=[("X-Forwarded-For", f"10.9.9.{i}"), ("X-Forwarded-For", "198.51.100.7")],
        ).status_code
        for i in range(2)
    ]
    assert forged + extra_line == [401, 401, 401, 401, 429]


def test_signup_limit_per_client(limited: TestClient) -> None:
    statuses = [
        limited.post("/users", json={"username": f"user{i}", "password": PASSWORD}).status_code for i in range(3)
    ]
    assert statuses == [201, 201, 429]


def test_malformed_limit_refuses_to_start(database_url: str) -> None:
    with pytest.raises(ValueError, match="twenty a minute"):
        create_app(make_settings(database_url, rate_limit_login_per_client="twenty a minute"))


def test_counters_of_past_clients_are_dropped() -> None:
    """A flood of distinct addresses leaves nothing behind once its window has passed."""

    async def flood() -> int:
        limiter = RateLimiter("async+memory://", per_client="5/1 second")
        for i in range(2000):
            await limiter.hit("per_client", f"198.18.{i // 250}.{i % 250}")
        await asyncio.sleep(2.2)
        await limiter.hit("per_client", "one more, which runs the store's expiry")
        await asyncio.sleep(0.1)
        store = limiter._strategy.storage  # the library's own store: what it keeps in memory
        return len(store.storage) + len(getattr(store, "events", {}))  # type: ignore[attr-defined]

    assert asyncio.run(flood()) <= 2, "expired counters must be dropped, not kept forever"


# --- enumeration ----------------------------------------------------------------------------------


def test_unknown_user_and_wrong_password_are_indistinguishable(database_url: str, settings: Settings) -> None:
    """Same status, same body, and the same time within 30 % (Argon2id at 64 MiB, about 100 ms here).

    A cost above the production default's 25 ms, so that the hash, not the machine's other work,
    decides the time of an answer; the decoy is made with whatever parameters are configured.
    """
    costly = make_settings(
        database_url,
        password_hash_memory_kib=64 * 1024,
        password_hash_time_cost=2,
        rate_limit_login_per_client="1000/minute",
    )
    for client in client_for(costly):
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


def test_hash_queue_is_bounded() -> None:
    """Past its capacity the pool refuses (503) instead of queueing past any timeout."""

    async def burst() -> list[str]:
        hasher = PasswordHasher(CHEAPEST, workers=1, max_waiting=2, max_wait_s=0)
        results = await asyncio.gather(*(hasher.hash(PASSWORD) for _ in range(6)), return_exceptions=True)
        hasher.shutdown()
        return ["refused" if isinstance(r, OverloadedError) else "hashed" for r in results]

    assert sorted(asyncio.run(burst())) == ["hashed"] * 3 + ["refused"] * 3


def test_hashing_threads_yield_the_cpu_to_requests() -> None:
    """Hash threads run 10 nice levels below the server's, so /ready gets a busy CPU first (RUN-2)."""
    hasher = PasswordHasher(CHEAPEST, workers=1)
    try:
        ours = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        theirs = hasher._pool.submit(lambda: os.getpriority(os.PRIO_PROCESS, threading.get_native_id())).result()
    finally:
        hasher.shutdown()
    assert theirs == min(19, ours + HASH_THREAD_NICENESS)
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) == ours, "the caller keeps its priority"


def test_a_full_queue_holds_a_request_before_refusing_it() -> None:
    """A burst waits for a place (up to max_wait_s); a request that finds none in time is refused.

    A refusal that came at once would let a flood of clients that retry at once keep the event
    loop busy answering 503s, and /ready would wait behind them.
    """

    async def burst() -> tuple[list[str], float]:
        hasher = PasswordHasher(CHEAPEST, workers=1, max_waiting=0, max_wait_s=0.3)
        started = asyncio.get_running_loop().time()
        slow = asyncio.ensure_future(hasher._run(time.sleep, 1.0))  # the only place, for a second
        await asyncio.sleep(0.05)
        refused = await asyncio.gather(hasher.hash(PASSWORD), return_exceptions=True)
        waited = asyncio.get_running_loop().time() - started
        await slow
        absorbed = await hasher.hash(PASSWORD)  # the place is free again
        hasher.shutdown()
        outcomes = ["refused" if isinstance(r, OverloadedError) else "hashed" for r in refused]
        return [*outcomes, "hashed" if absorbed.startswith("$argon2id$") else "?"], waited

    outcomes, waited = asyncio.run(burst())
    assert outcomes == ["refused", "hashed"]
    assert 0.3 <= waited < 0.9, f"the refused request waited {waited:.2f} s, not max_wait_s"


def test_overloaded_answers_503_with_retry_after(client: TestClient) -> None:
    async def refuse(*_: object) -> object:
        raise OverloadedError

    client.app.state.hasher._run = refuse  # type: ignore[attr-defined]
    response = client.post("/users", json={"username": "alice", "password": PASSWORD})
    assert response.status_code == 503
    assert response.headers["Retry-After"] == "1"


@pytest.mark.parametrize("field", ["password", "new_password", "current_password", "api_key", "refresh_token"])
def test_any_secret_named_field_is_never_echoed(field: str) -> None:
    # A team adds its own bodies (a password change, an API key): their errors are covered too.
    error = {"loc": ("body", field), "msg": "String should have at least 8 characters", "type": "x", "input": CANARY}
    assert "input" not in _public(error)
    assert _public({**error, "loc": ("body", "username")})["input"] == CANARY
