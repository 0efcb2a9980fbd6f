"""Verify the tokens the API server hands the broker, against that cluster's own published keys.

The broker never passes on a token it could not verify: a token that fails any check here means the API
server (or something between it and the broker) is not behaving as Kubernetes does → 502, and no token.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import jwt

from broker import metrics
from broker._kits.jwks import JwksCache
from broker._kits.jwt import UnusableToken, signing_key
from broker._kits.singleflight import SingleFlight
from broker.domain.errors import BrokerError, ErrorKind, upstream_refused

from .objects import SecretRef

# the issuer of tokens the legacy token controller writes into Secrets (serviceaccount.LegacyIssuer)
LEGACY_ISSUER = "kubernetes/serviceaccount"
SA_PREFIX = "system:serviceaccount:"
# validation leeway of kube-apiserver for exp, nbf and iat (pkg/serviceaccount/claims.go)
LEEWAY_SECONDS = 60.0
_LEGACY = "kubernetes.io/serviceaccount/"


class TokenSource(Protocol):
    """What the verifier needs from a cluster (its Discovery has both)."""

    async def discover_issuer(self) -> tuple[str, str]: ...

    async def fetch_jwks(self, uri: str) -> tuple[dict[str, Any], float | None]: ...


@dataclass(frozen=True)
class VerifiedToken:
    jti: str
    issued_at: dt.datetime
    expires_at: dt.datetime
    not_before: dt.datetime | None
    subject: str
    audiences: tuple[str, ...]
    issuer: str
    namespace: str
    service_account_name: str
    service_account_uid: str
    bound_secret_name: str | None
    bound_secret_uid: str | None
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)

    @property
    def lifetime_seconds(self) -> int:
        return int((self.expires_at - self.issued_at).total_seconds())


@dataclass(frozen=True)
class VerifiedLegacyToken:
    subject: str
    namespace: str
    service_account_name: str
    service_account_uid: str
    secret_name: str
    claims: Mapping[str, Any] = field(default_factory=dict, compare=False, repr=False)


def parse_subject(subject: str) -> tuple[str, str]:
    """(namespace, name) of `system:serviceaccount:NS:NAME`; ValueError otherwise."""
    if not subject.startswith(SA_PREFIX):
        raise ValueError(f"{subject!r} is not a service account user name")
    namespace, sep, name = subject[len(SA_PREFIX) :].partition(":")
    if not sep or not namespace or not name or ":" in name:
        raise ValueError(f"{subject!r} is not a service account user name")
    return namespace, name


def _refuse(why: str) -> BrokerError:
    return upstream_refused(
        f"the API server returned a token that does not verify: {why}", kind=ErrorKind.VERIFICATION
    )


def _time(value: Any) -> dt.datetime:
    return dt.datetime.fromtimestamp(float(value), dt.UTC)


def _audiences(claims: Mapping[str, Any], expected: Sequence[str]) -> tuple[str, ...]:
    aud = claims["aud"]
    audiences = (aud,) if isinstance(aud, str) else tuple(aud) if isinstance(aud, list) else ()
    if not audiences or not all(isinstance(a, str) for a in audiences):
        raise _refuse("no audience")
    missing = [a for a in expected if a not in audiences]
    if missing:
        raise _refuse(f"audiences {list(audiences)} lack {missing}")
    return audiences


def _bindings(
    claims: Mapping[str, Any], namespace: str, name: str, expected_secret: SecretRef | None
) -> tuple[str, str | None, str | None]:
    """(service account uid, bound Secret name, its uid) from the kubernetes.io claim, checked."""
    kube = claims.get("kubernetes.io")
    if not isinstance(kube, dict):
        raise _refuse("no kubernetes.io claim")
    if kube.get("namespace") != namespace:
        raise _refuse(f"namespace claim {kube.get('namespace')!r} is not {namespace!r}")
    account = kube.get("serviceaccount")
    if not isinstance(account, dict) or account.get("name") != name or not account.get("uid"):
        raise _refuse(f"service account claim does not name {namespace}/{name}")
    if kube.get("pod") is not None or kube.get("node") is not None:
        raise _refuse("it is bound to a pod or node, not what the broker asked for")
    secret = kube.get("secret")
    if expected_secret is None:
        if secret is not None:
            raise _refuse("it is bound to a secret the broker did not ask for")
        return str(account["uid"]), None, None
    if not isinstance(secret, dict):
        raise _refuse(f"it is not bound to secret {expected_secret.name!r}")
    secret_name, secret_uid = secret.get("name"), secret.get("uid")
    if expected_secret.namespace != namespace or secret_name != expected_secret.name:
        raise _refuse(f"it is bound to secret {secret_name!r}, not {expected_secret.name!r}")
    if expected_secret.uid and secret_uid != expected_secret.uid:
        raise _refuse(f"it is bound to another secret {expected_secret.name!r} (uid differs)")
    return str(account["uid"]), secret_name, secret_uid


class ClusterTokenVerifier:
    """Verifies service-account tokens of one cluster. The issuer is discovered unless configured.

    `ttl_tolerance`: how far exp - iat may differ from the expected lifetime. kube-apiserver sets
    exp = iat + the granted expirationSeconds exactly, so pass TokenResponse.expiration_seconds (the granted
    value, already shortened by a max-expiration cap) as `expected_ttl_seconds`.
    """

    def __init__(
        self,
        source: TokenSource,
        *,
        issuer: str | None = None,
        jwks_uri: str | None = None,
        leeway: float = LEEWAY_SECONDS,
        ttl_tolerance: float = 5.0,
        jwks_min_ttl: float = 60.0,
        jwks_max_ttl: float = 3600.0,
        refetch_cooldown: float = 10.0,
    ) -> None:
        self._source = source
        self._issuer = issuer
        self._jwks_uri = jwks_uri
        self._leeway = leeway
        self._ttl_tolerance = ttl_tolerance
        self._discovery: SingleFlight[str, tuple[str, str]] = SingleFlight()
        self.jwks = JwksCache(
            self._fetch_jwks,
            min_ttl=jwks_min_ttl,
            max_ttl=jwks_max_ttl,
            refetch_cooldown=refetch_cooldown,
            on_refresh=lambda outcome: metrics.jwks_refreshed("cluster", outcome),
            refused=upstream_refused,
        )

    async def issuer(self) -> str:
        """The configured issuer, else the one /.well-known/openid-configuration names (discovered once)."""
        if self._issuer is None:
            await self._discover()
        assert self._issuer is not None
        return self._issuer

    async def _discover(self) -> None:
        issuer, jwks_uri = await self._discovery.do("discovery", self._source.discover_issuer)
        if self._issuer is None:
            self._issuer = issuer
        if self._jwks_uri is None:
            self._jwks_uri = jwks_uri

    async def _fetch_jwks(self) -> tuple[dict[str, Any], float | None]:
        if self._jwks_uri is None:
            if self._issuer is None:
                await self._discover()
            else:
                self._jwks_uri = "/openid/v1/jwks"
        assert self._jwks_uri is not None
        return await self._source.fetch_jwks(self._jwks_uri)

    async def refresh(self) -> None:
        """Refetch the signing keys now (for a background refresher); raises BrokerError 503 when unreachable."""
        await self.jwks.refresh()

    async def _decode(self, token: str, *, issuer: str, require: list[str]) -> dict[str, Any]:
        try:
            _, key, alg = await signing_key(token, self.jwks)
        except UnusableToken as exc:
            raise _refuse(str(exc)) from None
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                issuer=issuer,
                leeway=self._leeway,
                options={"require": require, "verify_aud": False},
            )
        except jwt.PyJWTError as exc:
            raise _refuse(str(exc) or exc.__class__.__name__) from None
        return claims

    async def verify_bound(
        self,
        token: str,
        *,
        expected_audiences: Sequence[str],
        expected_subject: str,
        expected_ttl_seconds: int,
        expected_secret: SecretRef | None,
    ) -> VerifiedToken:
        """Verify a TokenRequest token: signature, iss, aud ⊇ expected (any non-empty aud when none expected),
        sub, exp - iat ≈ expected ttl, jti, and the kubernetes.io claims name the account and bound Secret.
        Failure → BrokerError 502; keys unreachable → BrokerError 503."""
        try:
            namespace, name = parse_subject(expected_subject)
        except ValueError as exc:
            raise ValueError(f"expected_subject: {exc}") from None
        claims = await self._decode(
            token, issuer=await self.issuer(), require=["exp", "iat", "iss", "aud", "sub", "jti"]
        )
        audiences = _audiences(claims, expected_audiences)
        if claims["sub"] != expected_subject:
            raise _refuse(f"subject {claims['sub']!r} is not {expected_subject!r}")
        jti = claims["jti"]
        if not isinstance(jti, str) or not jti:
            raise _refuse("no token id (jti)")
        issued_at, expires_at, not_before = self._lifetime(claims, expected_ttl_seconds)
        account_uid, secret_name, secret_uid = _bindings(claims, namespace, name, expected_secret)
        return VerifiedToken(
            jti=jti,
            issued_at=issued_at,
            expires_at=expires_at,
            not_before=not_before,
            subject=expected_subject,
            audiences=audiences,
            issuer=str(claims["iss"]),
            namespace=namespace,
            service_account_name=name,
            service_account_uid=account_uid,
            bound_secret_name=secret_name,
            bound_secret_uid=secret_uid,
            claims=claims,
        )

    def _lifetime(
        self, claims: Mapping[str, Any], expected_ttl_seconds: int
    ) -> tuple[dt.datetime, dt.datetime, dt.datetime | None]:
        try:
            issued_at, expires_at = _time(claims["iat"]), _time(claims["exp"])
            not_before = _time(claims["nbf"]) if "nbf" in claims else None
        except (TypeError, ValueError, OverflowError):
            raise _refuse("exp, iat or nbf is not a number") from None
        lifetime = (expires_at - issued_at).total_seconds()
        if abs(lifetime - expected_ttl_seconds) > self._ttl_tolerance:
            raise _refuse(f"it lives {lifetime:.0f} s, not the {expected_ttl_seconds} s granted")
        return issued_at, expires_at, not_before

    async def verify_legacy(self, token: str, *, namespace: str, service_account: str) -> VerifiedLegacyToken:
        """Verify a Secret-based legacy token: signature, iss "kubernetes/serviceaccount", sub and the
        kubernetes.io/serviceaccount/* claims. Such tokens carry no exp, iat or aud."""
        subject = f"{SA_PREFIX}{namespace}:{service_account}"
        claims = await self._decode(token, issuer=LEGACY_ISSUER, require=["iss", "sub"])
        if claims["sub"] != subject:
            raise _refuse(f"subject {claims['sub']!r} is not {subject!r}")
        if claims.get(_LEGACY + "namespace") != namespace:
            raise _refuse(f"namespace claim is not {namespace!r}")
        if claims.get(_LEGACY + "service-account.name") != service_account:
            raise _refuse(f"service account claim is not {service_account!r}")
        uid = claims.get(_LEGACY + "service-account.uid")
        secret_name = claims.get(_LEGACY + "secret.name")
        if not isinstance(uid, str) or not uid or not isinstance(secret_name, str) or not secret_name:
            raise _refuse("legacy service account or secret claims are missing")
        return VerifiedLegacyToken(subject, namespace, service_account, uid, secret_name, claims)
