"""JSON Web Tokens as the broker meets them: read unverified (to choose whose keys check a token), a signing
key chosen safely from a key set, and a plain signature check for tokens that need no more (introspection,
`token-broker decode`)."""

from __future__ import annotations

import base64
import binascii
import json
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Protocol

import jwt

# Signature algorithms of asymmetric keys only: kube-apiserver signs with RSA or ECDSA keys
# (serviceaccount.JWTTokenGenerator). HS* would let anyone who holds the published key use it as an HMAC
# secret and forge tokens; "none" is no signature at all.
ALLOWED_ALGORITHMS = ("RS256", "RS384", "RS512", "ES256", "ES384", "ES512")


class KeySource(Protocol):
    """A JSON Web Key Set by key id (JwksCache)."""

    async def key(self, kid: str, alg: str) -> jwt.PyJWK | None: ...


class UnusableToken(ValueError):
    """A token whose signature cannot even be checked; the message says why (never quoting the token)."""


class InvalidToken(ValueError):
    """The token does not verify; the message says why (never quoting the token)."""


@dataclass(frozen=True)
class UnverifiedToken:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]


def decode_unverified(token: str) -> UnverifiedToken:
    """Header and claims of a JWT WITHOUT checking anything. ValueError if not a JWT."""
    parts = token.strip().split(".")
    if len(parts) != 3:
        raise ValueError("not a JWT: expected three dot-separated parts")
    try:
        header = json.loads(_b64url(parts[0]))
        claims = json.loads(_b64url(parts[1]))
    except (ValueError, binascii.Error, UnicodeDecodeError) as exc:
        raise ValueError(f"not a JWT: {exc}") from None
    if not isinstance(header, dict) or not isinstance(claims, dict):
        raise ValueError("not a JWT: header and payload must be JSON objects")
    return UnverifiedToken(header, claims)


def _b64url(part: str) -> bytes:
    return base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))


async def signing_key(token: str, keys: KeySource) -> tuple[dict[str, Any], jwt.PyJWK, str]:
    """(header, key, alg) to check a JWT with: "none" and HS* are refused, as are a missing kid and a key the
    set does not publish. Raises UnusableToken; whatever `keys` raises when they cannot be fetched."""
    try:
        header = jwt.get_unverified_header(token)
    except jwt.PyJWTError as exc:
        raise UnusableToken(f"malformed ({exc})") from None
    alg, kid = header.get("alg"), header.get("kid")
    if not isinstance(alg, str) or alg not in ALLOWED_ALGORITHMS:
        raise UnusableToken(f"algorithm {alg!r} is not one of {', '.join(ALLOWED_ALGORITHMS)}")
    if not isinstance(kid, str) or not kid:
        raise UnusableToken("no key id (kid) in its header")
    key = await keys.key(kid, alg)
    if key is None:
        raise UnusableToken(f"signed with key {kid!r} ({alg}), which the key set does not publish")
    return header, key, alg


@dataclass(frozen=True)
class VerifiedClaims:
    header: Mapping[str, Any]
    claims: Mapping[str, Any]
    # None: no exp (a legacy Secret token lives until its Secret is deleted)
    expires_at: datetime | None

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and now >= self.expires_at


def _claim_time(claims: Mapping[str, Any], name: str) -> datetime | None:
    value = claims.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise InvalidToken(f"{name} is not a number")
    try:
        return datetime.fromtimestamp(float(value), UTC)
    except (OverflowError, OSError, ValueError):
        raise InvalidToken(f"{name} is out of range") from None


async def verify_any(token: str, keys: KeySource, *, issuer: str | None) -> VerifiedClaims:
    """Signature (against `keys`) and, when given, iss — for any service-account token, bound or legacy.

    Expects nothing of aud, sub, lifetime or binding, and does not refuse an expired token: introspection and
    `token-broker decode` report expiry, they do not fail on it. Raises InvalidToken; whatever `keys` raises
    when they cannot be fetched.
    """
    try:
        header, key, alg = await signing_key(token, keys)
    except UnusableToken as exc:
        raise InvalidToken(str(exc)) from None
    try:
        claims: dict[str, Any] = jwt.decode(
            token,
            key=key,
            algorithms=[alg],
            issuer=issuer,
            options={
                "require": ["iss", "sub"],
                "verify_aud": False,
                "verify_exp": False,
                "verify_nbf": False,
                "verify_iat": False,
                "verify_iss": issuer is not None,
            },
        )
    except jwt.PyJWTError as exc:
        raise InvalidToken(str(exc) or type(exc).__name__) from None
    for name in ("iat", "nbf"):
        _claim_time(claims, name)
    return VerifiedClaims(header=header, claims=claims, expires_at=_claim_time(claims, "exp"))
