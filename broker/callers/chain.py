"""Tries each authentication method in order; the first that recognises its kind of credential decides."""

from __future__ import annotations

from collections.abc import Sequence

from broker import metrics
from broker.callers.api_key import API_KEY_HEADER, bearer_value, looks_like_jwt
from broker.callers.base import Authenticator, CallerRequest
from broker.errors import BrokerError, unauthenticated
from broker.identity import Caller


class AuthenticatorChain:
    """An ordered, replaceable set of authenticators.

    `replace` swaps the whole tuple in one assignment (a SIGHUP reload): a request already being
    authenticated finishes with the set it started with, never with a mix of old and new.
    """

    def __init__(self, authenticators: Sequence[Authenticator], realm: str = "token-broker") -> None:
        self._authenticators: tuple[Authenticator, ...] = tuple(authenticators)
        self._realm = realm

    @property
    def authenticators(self) -> tuple[Authenticator, ...]:
        return self._authenticators

    @property
    def challenge(self) -> str:
        """The WWW-Authenticate value every 401 carries (RFC 9110 §11.6.1, RFC 6750 §3)."""
        return f'Bearer realm="{self._realm}"'

    def replace(self, authenticators: Sequence[Authenticator]) -> None:
        self._authenticators = tuple(authenticators)

    async def authenticate(self, request: CallerRequest) -> Caller:
        """The caller, or BrokerError 401: no credential at all, or the first one offered was refused."""
        for authenticator in self._authenticators:
            try:
                caller = await authenticator.authenticate(request)
            except BrokerError as exc:
                metrics.auth_failure(_method(authenticator), failure_kind(exc))
                raise
            if caller is not None:
                return caller
        offered = offered_method(request)
        if offered is None:
            metrics.auth_failure("none", "missing")
            raise unauthenticated(
                "no credential: present a client certificate, an API key, or a bearer token",
                reason="no credential recognised by any authenticator",
            )
        # a credential of a kind this broker is not configured for: say so, and count it under its kind
        metrics.auth_failure(offered, "not_accepted")
        what = {"mtls": "client certificates", "api_key": "API keys"}.get(offered, "bearer tokens")
        raise unauthenticated(
            f"this broker accepts no {what}", reason=f"a credential of a kind not configured: {what}"
        )


def offered_method(request: CallerRequest) -> metrics.AuthMethod | None:
    """The kind of credential a request carries, whoever would check it; None when it carries none.

    A bearer value shaped like a JWT may be for OIDC or for TokenReview: "none" says only that one came.
    """
    if request.header(API_KEY_HEADER) is not None:
        return "api_key"
    bearer = bearer_value(request.header("Authorization"))
    if bearer:
        return "none" if looks_like_jwt(bearer) else "api_key"
    if request.peer_cert_der is not None:
        return "mtls"
    return None


_METHODS: dict[str, metrics.AuthMethod] = {
    "mtls": "mtls",
    "api-key": "api_key",
    "oidc": "oidc",
    "kubernetes": "kubernetes",
}

# The caller-safe detail of each refusal names its kind in a few fixed words; first match wins.
_KINDS: tuple[tuple[str, metrics.AuthReason], ...] = (
    ("expired", "expired"),
    ("not valid yet", "not_yet_valid"),
    ("too old", "too_old"),
    ("audience", "bad_audience"),
    ("trusted issuer", "untrusted_issuer"),
    ("signed with a key", "bad_signature"),
    ("signature", "bad_signature"),
    ("signing key", "bad_signature"),
    ("not accepted by the cluster", "revoked"),
    ("claim", "claims"),
    ("email", "claims"),
    ("unknown", "unknown"),
)


def _method(authenticator: Authenticator) -> metrics.AuthMethod:
    return _METHODS.get(str(getattr(authenticator, "method", "")), "none")


def failure_kind(exc: BrokerError) -> metrics.AuthReason:
    """A low-cardinality label for a refused credential (the full reason goes to the log, not the metric)."""
    if exc.status >= 500:
        return "unavailable"
    detail = exc.detail.lower()
    return next((kind for words, kind in _KINDS if words in detail), "malformed")
