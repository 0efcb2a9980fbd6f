"""The bearer JWT a request carries, for the token authenticators (OIDC, TokenReview)."""

from __future__ import annotations

from broker.callers.api_key import bearer_value, looks_like_jwt
from broker.callers.base import CallerRequest
from broker.domain.errors import ErrorKind, unauthenticated

# Real CI identity tokens are 1-2 KiB (GitLab, GitHub, Jenkins, service-account tokens). Anything larger is refused
# before it is parsed. The bound sits just under aiohttp's 8190-byte limit on a header field, so a refusal here is
# a 401 that names the cause rather than the server's bare 400.
MAX_BEARER_BYTES = 8000


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
