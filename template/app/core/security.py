"""Password hashing with bcrypt and access tokens with PyJWT (SEC-2: no passlib, no python-jose)."""

from datetime import UTC, datetime, timedelta

import bcrypt
import jwt

# The algorithm is pinned: a token that claims another one, `none` included, is rejected.
JWT_ALGORITHM = "HS256"
# bcrypt hashes at most 72 bytes; bcrypt 5 raises on longer input instead of truncating.
BCRYPT_MAX_BYTES = 72


class InvalidTokenError(Exception):
    """The token is missing, expired, tampered with or not ours."""


def password_too_long(password: str) -> bool:
    return len(password.encode("utf-8")) > BCRYPT_MAX_BYTES


def hash_password(password: str, rounds: int) -> str:
    return bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt(rounds=rounds)).decode("ascii")


def verify_password(password: str, password_hash: str) -> bool:
    if password_too_long(password):
        return False
    return bcrypt.checkpw(password.encode("utf-8"), password_hash.encode("ascii"))


def create_access_token(subject: str, secret_key: str, expires_in: timedelta) -> str:
    now = datetime.now(UTC)
    claims = {"sub": subject, "iat": now, "exp": now + expires_in}
    return jwt.encode(claims, secret_key, algorithm=JWT_ALGORITHM)


def decode_access_token(token: str, secret_key: str) -> str:
    """The token's subject; raises InvalidTokenError on anything but a valid, unexpired token."""
    try:
        claims = jwt.decode(
            token,
            secret_key,
            algorithms=[JWT_ALGORITHM],
            options={"require": ["exp", "iat", "sub"]},
        )
    except jwt.PyJWTError as exc:
        raise InvalidTokenError(str(exc)) from exc
    return str(claims["sub"])
