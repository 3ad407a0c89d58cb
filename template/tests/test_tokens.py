"""Verified tokens are remembered, never longer than their exp, and failures are never remembered (SEC-2)."""

import time
from datetime import timedelta

import jwt
import pytest
from fastapi.testclient import TestClient

from app.core.security import InvalidTokenError, VerifiedTokens, create_access_token
from tests.conftest import TEST_SECRET_KEY
from tests.test_users import login, me, register

ISSUER, AUDIENCE = "orders/auth", "orders"


class Clock:
    def __init__(self) -> None:
        self.now = time.time()

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def decodes(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """The tokens PyJWT was asked to verify, in order."""
    calls: list[str] = []
    decode = jwt.decode

    def counting(token: str, *args: object, **kwargs: object) -> object:
        calls.append(token)
        return decode(token, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jwt, "decode", counting)
    return calls


def token(subject: str = "alice", expires_in: timedelta = timedelta(minutes=30)) -> str:
    return create_access_token(subject, TEST_SECRET_KEY, expires_in, issuer=ISSUER, audience=AUDIENCE)


def test_a_token_is_verified_once_per_minute_not_per_request(client: TestClient, decodes: list[str]) -> None:
    register(client)
    bearer = login(client)
    assert [me(client, bearer) for _ in range(3)] == [200, 200, 200]
    assert decodes == [bearer]


def test_a_remembered_token_is_checked_again_at_its_exp(decodes: list[str]) -> None:
    clock = Clock()
    tokens = VerifiedTokens(TEST_SECRET_KEY, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    short = token(expires_in=timedelta(seconds=30))
    assert tokens.subject(short) == "alice"
    clock.now += 20
    assert tokens.subject(short) == "alice"
    assert len(decodes) == 1
    # Past its exp the cache no longer answers: the token goes through PyJWT again, which decides
    # on the real time (here still before exp, so it passes).
    clock.now += 11  # past exp (a whole second, made after the clock started, plus 30 s)
    assert tokens.subject(short) == "alice"
    assert decodes == [short, short]


def test_a_remembered_token_is_checked_again_after_max_age(decodes: list[str]) -> None:
    clock = Clock()
    tokens = VerifiedTokens(TEST_SECRET_KEY, issuer=ISSUER, audience=AUDIENCE, clock=clock)
    long_lived = token()
    tokens.subject(long_lived)
    clock.now += VerifiedTokens.max_age_s + 1
    tokens.subject(long_lived)
    assert decodes == [long_lived, long_lived]


def test_a_refused_token_is_never_remembered(decodes: list[str]) -> None:
    tokens = VerifiedTokens(TEST_SECRET_KEY, issuer=ISSUER, audience=AUDIENCE)
    forged = create_access_token(
        "alice", "another-secret-key-that-is-long-enough-0123", timedelta(minutes=5), issuer=ISSUER, audience=AUDIENCE
    )
    for _ in range(2):
        with pytest.raises(InvalidTokenError):
            tokens.subject(forged)
    assert len(decodes) == 2
    assert len(tokens) == 0


def test_the_cache_is_bounded_and_forgets_the_least_recently_used(decodes: list[str]) -> None:
    tokens = VerifiedTokens(TEST_SECRET_KEY, issuer=ISSUER, audience=AUDIENCE, max_entries=2)
    first, second, third = token("a"), token("b"), token("c")
    for each in (first, second, first, third):  # `first` used again: `second` is the oldest
        tokens.subject(each)
    assert len(tokens) == 2
    tokens.subject(first)
    tokens.subject(second)
    assert decodes == [first, second, third, second]


def test_an_expired_token_is_refused_even_after_it_was_remembered() -> None:
    tokens = VerifiedTokens(TEST_SECRET_KEY, issuer=ISSUER, audience=AUDIENCE)
    brief = token(expires_in=timedelta(seconds=1))
    assert tokens.subject(brief) == "alice"
    time.sleep(1.1)
    with pytest.raises(InvalidTokenError):
        tokens.subject(brief)
    assert len(tokens) == 0
