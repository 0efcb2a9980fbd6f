"""OIDC identity tokens from CI systems (GitLab `id_tokens`, GitHub Actions, Jenkins' OIDC provider plugin).

The issuer's configuration is chosen by the token's `iss`, read unverified, and only then is the signature
checked, with that issuer's keys alone: a token whose `iss` names a trusted issuer but that was signed by anyone
else fails, whatever `kid` it borrows. Checks mirror kube-apiserver's OIDC authenticator
(plugin/pkg/authenticator/token/oidc): exact issuer, required audience, asymmetric algorithms only, 60 s leeway
on exp/nbf/iat, the user from one claim (with a prefix), groups from another, email only when verified.
"""

from __future__ import annotations

import ssl
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit

import jwt

from broker import metrics
from broker._kits.jwks import JwksCache
from broker._kits.jwt import ALLOWED_ALGORITHMS, decode_unverified
from broker._kits.singleflight import SingleFlight
from broker._kits.tls import TlsFileError, client_ssl_context
from broker.callers.base import CallerRequest
from broker.callers.bearer import bearer_jwt
from broker.callers.json_fetch import JsonFetcher
from broker.domain.errors import BrokerError, ErrorKind, unauthenticated, upstream_refused
from broker.domain.identity import Caller

DISCOVERY_PATH = "/.well-known/openid-configuration"
_REQUIRED_CLAIMS = ["exp", "iat", "iss", "aud", "sub"]


@dataclass(frozen=True)
class OidcSettings:
    """One trusted issuer, as plain data (config.toml's [[auth.oidc]] says what each field means)."""

    issuer: str
    audience: str
    jwks_uri: str | None = None
    algorithms: tuple[str, ...] = ("RS256", "ES256")
    leeway_seconds: int = 60
    max_token_age_seconds: int = 3600
    username_claim: str = "sub"
    username_prefix: str = ""
    groups_claim: str | None = None
    groups_prefix: str = ""
    groups: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        # the config loader refuses these already; a programmatic caller must not get around it
        refused = [a for a in self.algorithms if a not in ALLOWED_ALGORITHMS]
        if refused or not self.algorithms:
            raise ValueError(
                f"OIDC issuer {self.issuer}: algorithms must be among {', '.join(ALLOWED_ALGORITHMS)}"
            )


def issuer_ssl_context(ca_file: str | None) -> ssl.SSLContext | None:
    """A client TLS context trusting `ca_file` (None: the system trust store). ValueError when unreadable."""
    if ca_file is None:
        return None
    try:
        return client_ssl_context(cafile=ca_file)
    except TlsFileError as exc:
        raise ValueError(f"cannot load the OIDC issuer {exc}") from None


def _clip(value: Any) -> str:
    """Caller-controlled text in a log or audit reason: bounded and quoted."""
    text = repr(value)
    return text if len(text) <= 100 else text[:99] + "…"


def _secure_url(url: str) -> bool:
    parts = urlsplit(url)
    host = parts.hostname or ""
    return parts.scheme == "https" or (
        parts.scheme == "http" and (host in ("localhost", "::1") or host.startswith("127."))
    )


def _refused(kind: ErrorKind, detail: str, reason: str) -> BrokerError:
    return unauthenticated(kind, detail, reason=reason)


class OidcIssuer:
    """Discovery, signing keys and token verification for one trusted issuer."""

    def __init__(
        self,
        settings: OidcSettings,
        fetcher: JsonFetcher | None = None,
        *,
        jwks_min_ttl: float = 60.0,
        jwks_max_ttl: float = 3600.0,
        refetch_cooldown: float = 10.0,
        max_stale: float = 3600.0,
        monotonic: Callable[[], float] = time.monotonic,
        now: Callable[[], float] = time.time,
    ) -> None:
        self.settings = settings
        self._fetcher = fetcher or JsonFetcher()
        self._jwks_uri = settings.jwks_uri
        self._discovery: SingleFlight[str, str] = SingleFlight()
        self._now = now
        self.jwks = JwksCache(
            self._fetch_jwks,
            min_ttl=jwks_min_ttl,
            max_ttl=jwks_max_ttl,
            refetch_cooldown=refetch_cooldown,
            max_stale=max_stale,
            clock=monotonic,
            label=f"issuer {settings.issuer}'s",
            on_refresh=lambda outcome: metrics.jwks_refreshed("oidc", outcome),
            refused=upstream_refused,
        )

    @property
    def issuer(self) -> str:
        return self.settings.issuer

    async def jwks_uri(self) -> str:
        """The configured jwks_uri, else the one the discovery document names (fetched once, then kept)."""
        if self._jwks_uri is None:
            self._jwks_uri = await self._discovery.do("discovery", self._discover)
        return self._jwks_uri

    async def _discover(self) -> str:
        url = self.issuer.rstrip("/") + DISCOVERY_PATH
        document, _ = await self._fetcher.get(url, what=f"the discovery document of issuer {self.issuer}")
        # OpenID Connect Discovery 1.0 §4.3: the document's issuer MUST equal the one it was fetched for
        if document.get("issuer") != self.issuer:
            raise upstream_refused(
                f"the discovery document of issuer {self.issuer} names another issuer",
                reason=f"discovery at {url} names issuer {_clip(document.get('issuer'))}",
            )
        uri = document.get("jwks_uri")
        if not isinstance(uri, str) or not _secure_url(uri):
            raise upstream_refused(
                f"the discovery document of issuer {self.issuer} has no usable https jwks_uri",
                reason=f"discovery at {url} names jwks_uri {_clip(uri)}",
            )
        return uri

    async def _fetch_jwks(self) -> tuple[dict[str, Any], float | None]:
        uri = await self.jwks_uri()
        document, max_age = await self._fetcher.get(uri, what=f"the signing keys of issuer {self.issuer}")
        if not isinstance(document.get("keys"), list):
            raise upstream_refused(f"the signing keys of issuer {self.issuer} are not a JSON Web Key Set")
        return document, max_age

    async def verify(self, token: str, header: Mapping[str, Any]) -> Caller:
        """The caller a token of this issuer names; BrokerError 401 when it does not verify, 503 when the
        issuer's keys cannot be fetched."""
        alg, key = await self._signing_key(header)
        claims = self._decode(token, key, alg)
        self._check_age(claims)
        return Caller(
            user=self._user(claims),
            groups=self._groups(claims),
            method=OidcAuthenticator.method,
            claims=MappingProxyType(claims),
        )

    async def _signing_key(self, header: Mapping[str, Any]) -> tuple[str, jwt.PyJWK]:
        s = self.settings
        alg, kid = header.get("alg"), header.get("kid")
        if not isinstance(alg, str) or alg not in s.algorithms:
            raise _refused(
                ErrorKind.BAD_SIGNATURE,
                "token signature algorithm is not accepted",
                f"alg {_clip(alg)} not among {list(s.algorithms)} of issuer {s.issuer}",
            )
        if not isinstance(kid, str) or not kid:
            raise _refused(
                ErrorKind.BAD_SIGNATURE,
                "token names no signing key (kid)",
                f"token of issuer {s.issuer} without kid",
            )
        key = await self.jwks.key(kid, alg)
        if key is None:
            raise _refused(
                ErrorKind.BAD_SIGNATURE,
                "token is signed with a key the issuer does not publish",
                f"no {alg} key with kid {_clip(kid)} in the key set of issuer {s.issuer}",
            )
        return alg, key

    def _decode(self, token: str, key: jwt.PyJWK, alg: str) -> dict[str, Any]:
        s = self.settings
        try:
            claims: dict[str, Any] = jwt.decode(
                token,
                key=key,
                algorithms=[alg],
                audience=s.audience,
                issuer=s.issuer,
                leeway=s.leeway_seconds,
                options={"require": _REQUIRED_CLAIMS},
            )
        except jwt.ExpiredSignatureError:
            raise _refused(
                ErrorKind.CREDENTIAL_EXPIRED, "token has expired", f"expired token of issuer {s.issuer}"
            ) from None
        except jwt.ImmatureSignatureError as exc:
            raise _refused(
                ErrorKind.CREDENTIAL_NOT_YET_VALID,
                "token is not valid yet",
                f"token of issuer {s.issuer}: {exc}",
            ) from None
        except jwt.InvalidAudienceError:
            raise _refused(
                ErrorKind.BAD_AUDIENCE,
                "token is not meant for this broker (audience)",
                f"token of issuer {s.issuer} lacks audience {s.audience!r}",
            ) from None
        except jwt.PyJWTError as exc:
            raise _refused(
                ErrorKind.CREDENTIAL_MALFORMED,
                "token is invalid",
                f"token of issuer {s.issuer}: {exc.__class__.__name__}: {exc}",
            ) from None
        return claims

    def _check_age(self, claims: Mapping[str, Any]) -> None:
        s = self.settings
        issued_at = float(claims["iat"])
        if self._now() - issued_at > s.max_token_age_seconds + s.leeway_seconds:
            raise _refused(
                ErrorKind.CREDENTIAL_TOO_OLD,
                f"token is too old: issued more than {s.max_token_age_seconds} s ago",
                f"token of issuer {s.issuer} issued at {issued_at:.0f}, max age {s.max_token_age_seconds} s",
            )

    def _user(self, claims: Mapping[str, Any]) -> str:
        s = self.settings
        name = claims.get(s.username_claim)
        if not isinstance(name, str) or not name:
            raise _refused(
                ErrorKind.CLAIMS,
                f"token has no {s.username_claim} claim to use as the user name",
                f"token of issuer {s.issuer} without a string {s.username_claim!r} claim",
            )
        # kube-apiserver: an email is a user name only when the issuer verified it
        if s.username_claim == "email" and claims.get("email_verified", True) is not True:
            raise _refused(
                ErrorKind.CLAIMS,
                "token email is not verified",
                f"email_verified is not true (issuer {s.issuer})",
            )
        return s.username_prefix + name

    def _groups(self, claims: Mapping[str, Any]) -> tuple[str, ...]:
        s = self.settings
        found: list[str] = []
        if s.groups_claim is not None:
            value = claims.get(s.groups_claim)
            # kube-apiserver accepts a single string or an array of strings
            values = [] if value is None else [value] if isinstance(value, str) else value
            if not isinstance(values, list) or not all(isinstance(v, str) for v in values):
                raise _refused(
                    ErrorKind.CLAIMS,
                    f"token claim {s.groups_claim} is not a list of group names",
                    f"claim {s.groups_claim!r} of issuer {s.issuer} is {type(value).__name__}",
                )
            found = [s.groups_prefix + v for v in values if v]
        return tuple(dict.fromkeys([*s.groups, *found]))


class OidcAuthenticator:
    """`Authorization: Bearer <JWT>` from a trusted issuer → Caller(method="oidc", claims=verified claims).

    A JWT whose `iss` is not a configured issuer is left to the next authenticator (TokenReview) when
    `defer_unknown_issuers`, and refused with 401 otherwise.
    """

    method = "oidc"

    def __init__(self, issuers: Sequence[OidcIssuer], *, defer_unknown_issuers: bool = False) -> None:
        self._issuers: dict[str, OidcIssuer] = {}
        for issuer in issuers:
            if issuer.issuer in self._issuers:
                raise ValueError(f"OIDC issuer {issuer.issuer!r} is configured twice")
            self._issuers[issuer.issuer] = issuer
        self._defer = defer_unknown_issuers

    @property
    def issuers(self) -> tuple[OidcIssuer, ...]:
        return tuple(self._issuers.values())

    async def authenticate(self, request: CallerRequest) -> Caller | None:
        token = bearer_jwt(request)
        if token is None:
            return None
        try:
            # only to choose whose keys verify it; nothing read here is trusted
            peek = decode_unverified(token)
        except ValueError:
            if self._defer:
                return None
            raise _refused(
                ErrorKind.CREDENTIAL_MALFORMED,
                "bearer token is not a readable JWT",
                "bearer JWT with an undecodable header or payload",
            ) from None
        iss = peek.claims.get("iss")
        issuer = self._issuers.get(iss) if isinstance(iss, str) else None
        if issuer is None:
            if self._defer:
                return None
            raise _refused(
                ErrorKind.UNTRUSTED_ISSUER,
                "bearer token is not from a trusted issuer",
                f"token issuer {_clip(iss)} is not configured",
            )
        return await issuer.verify(token, peek.header)
