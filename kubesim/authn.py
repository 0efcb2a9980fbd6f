"""Authentication: who made a request, as kube-apiserver's union authenticator decides it.

Order as in pkg/kubeapiserver/authenticator: the x509 client certificate first (a verified one wins and no
bearer token is looked at), then bearer tokens (an invalid one is an error → 401), then anonymous.
"""

from __future__ import annotations

import hashlib

from cryptography import x509

from broker._kits.pki import identity_of

from . import token_auth
from .context import SimContext, UserInfo

AUTHENTICATED = "system:authenticated"
UNAUTHENTICATED = "system:unauthenticated"
ANONYMOUS = "system:anonymous"
CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"

# AuthenticationConfiguration anonymous.conditions (KEP-4633, beta in 1.32): anonymous requests are admitted
# only for these paths; any other anonymous request is answered 401 instead of reaching the authorizer.
ANONYMOUS_PATHS = frozenset(
    {
        "/version",
        "/version/",
        "/healthz",
        "/livez",
        "/readyz",
        "/.well-known/openid-configuration",
        "/openid/v1/jwks",
    }
)


class AuthenticationFailed(Exception):
    """Credentials were presented but are not valid (kube-apiserver answers 401)."""


def from_certificate(der: bytes | None) -> UserInfo | None:
    """The TLS layer already verified the chain against the cluster CA; read CN/O like the x509 authenticator,
    which also names the credential: the SHA-256 of the certificate, as the credential id of user.Info.extra."""
    if not der:
        return None
    user, groups = identity_of(x509.load_der_x509_certificate(der))
    if not user:
        return None
    extra = {CREDENTIAL_ID: [f"X509SHA256={hashlib.sha256(der).hexdigest()}"]}
    return UserInfo(username=user, groups=[*groups, AUTHENTICATED], extra=extra)


def bearer_token(authorization: str | None) -> str | None:
    # bearertoken authenticator: "Bearer <token>", scheme case-insensitive, token non-empty
    if not authorization:
        return None
    scheme, _, token = authorization.strip().partition(" ")
    if scheme.lower() != "bearer":
        return None
    return token.strip() or None


def authenticate(ctx: SimContext, peer_der: bytes | None, authorization: str | None, path: str) -> UserInfo:
    """Return the user, or raise AuthenticationFailed (bad credentials or anonymous where not allowed)."""
    user = from_certificate(peer_der)
    if user is not None:
        return user
    token = bearer_token(authorization)
    if token is not None:
        user = token_auth.authenticate_token(ctx, token)
        if user is None:
            raise AuthenticationFailed("invalid bearer token")
        if AUTHENTICATED not in user.groups:
            user.groups = [*user.groups, AUTHENTICATED]
        return user
    # a non-Bearer Authorization header (Basic, garbage) is ignored, as bearertoken.Authenticator does
    if path in ANONYMOUS_PATHS:
        return UserInfo(username=ANONYMOUS, groups=[UNAUTHENTICATED])
    raise AuthenticationFailed("anonymous request")
