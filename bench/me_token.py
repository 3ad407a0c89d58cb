"""The token check both hand-written baselines of `me_rps` make, as the service makes it.

PyJWT, HS256, the same required claims, the issuer and audience from the same environment
(bench/run.py sets them for every server). bench/run.py copies this file beside the baselines.
"""

import os

import jwt
from fastapi import HTTPException

SECRET_KEY = os.environ["SECRET_KEY"]
ISSUER, AUDIENCE = os.environ["JWT_ISSUER"], os.environ["JWT_AUDIENCE"]


def bearer_subject(authorization: str) -> str:
    """The subject of a valid `Bearer <JWT>` header value; 401 otherwise."""
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer":
        raise HTTPException(401)
    try:
        claims = jwt.decode(
            token,
            SECRET_KEY,
            algorithms=["HS256"],
            issuer=ISSUER,
            audience=AUDIENCE,
            options={"require": ["exp", "iat", "sub", "iss", "aud"]},
        )
    except jwt.PyJWTError:
        raise HTTPException(401) from None
    return str(claims["sub"])
