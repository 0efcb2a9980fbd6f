"""The `Authorization: Bearer` value a request carries: an API key for api_key.py, or a JWT for the token
authenticators (OIDC, TokenReview), told apart by its shape."""

from __future__ import annotations

import re

from broker.callers.base import CallerRequest
from broker.domain.errors import ErrorKind, unauthenticated

# Real CI identity tokens are 1-2 KiB (GitLab, GitHub, Jenkins, service-account tokens). Anything larger is refused
# before it is parsed. The bound sits just under aiohttp's 8190-byte limit on a header field, so a refusal here is
# a 401 that names the cause rather than the server's bare 400.
MAX_BEARER_BYTES = 8000
# A JWS in compact serialization: three base64url segments (RFC 7515 §7.1). Such a bearer value belongs to a
# token authenticator (OIDC, TokenReview), never to the API-key one.
_JWT_SHAPE = re.compile(r"[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]*")


def looks_like_jwt(value: str) -> bool:
    return _JWT_SHAPE.fullmatch(value) is not None


def bearer_value(authorization: str | None) -> str | None:
    """The credential of an `Authorization: Bearer <value>` header (scheme case-insensitive, RFC 9110 §11.1)."""
    if authorization is None:
        return None
    scheme, _, value = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return value.strip()


def bearer_jwt(request: CallerRequest) -> str | None:
    """The `Authorization: Bearer` value when it has the shape of a JWT (None: not a token for us).

    Raises BrokerError 401 for one too large to be a real identity token.
    """
    token = bearer_value(request.header("Authorization"))
    if token is None:
        return None
    if len(token) > MAX_BEARER_BYTES:
        raise unauthenticated(
            ErrorKind.CREDENTIAL_MALFORMED,
            "bearer token is too large",
            reason=f"bearer token of {len(token)} bytes refused (limit {MAX_BEARER_BYTES})",
        )
    if not looks_like_jwt(token):
        return None
    return token
