"""Tries each authentication method in order; the first that recognises its kind of credential decides."""

from __future__ import annotations

from collections.abc import Sequence

from broker import metric_labels, metrics
from broker.callers.api_key import API_KEY_HEADER
from broker.callers.base import Authenticator, CallerRequest
from broker.callers.bearer import bearer_value, looks_like_jwt
from broker.domain.errors import BrokerError, ErrorKind, unauthenticated
from broker.domain.identity import Caller


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
                ErrorKind.CREDENTIAL_MISSING,
                "no credential: present a client certificate, an API key, or a bearer token",
                reason="no credential recognised by any authenticator",
            )
        # a credential of a kind this broker is not configured for: say so, and count it under its kind
        metrics.auth_failure(offered, "not_accepted")
        what = {"mtls": "client certificates", "api_key": "API keys"}.get(offered, "bearer tokens")
        raise unauthenticated(
            ErrorKind.CREDENTIAL_NOT_ACCEPTED,
            f"this broker accepts no {what}",
            reason=f"a credential of a kind not configured: {what}",
        )


def offered_method(request: CallerRequest) -> metric_labels.AuthMethod | None:
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


_METHODS: dict[str, metric_labels.AuthMethod] = {
    "mtls": "mtls",
    "api-key": "api_key",
    "oidc": "oidc",
    "kubernetes": "kubernetes",
}

# the `reason` label of each kind of refused credential
_REASONS: dict[ErrorKind, metric_labels.AuthReason] = {
    ErrorKind.CREDENTIAL_MISSING: "missing",
    ErrorKind.CREDENTIAL_NOT_ACCEPTED: "not_accepted",
    ErrorKind.CREDENTIAL_MALFORMED: "malformed",
    ErrorKind.CREDENTIAL_UNKNOWN: "unknown",
    ErrorKind.BAD_SIGNATURE: "bad_signature",
    ErrorKind.UNTRUSTED_ISSUER: "untrusted_issuer",
    ErrorKind.BAD_AUDIENCE: "bad_audience",
    ErrorKind.CREDENTIAL_EXPIRED: "expired",
    ErrorKind.CREDENTIAL_NOT_YET_VALID: "not_yet_valid",
    ErrorKind.CREDENTIAL_TOO_OLD: "too_old",
    ErrorKind.CLAIMS: "claims",
    ErrorKind.CREDENTIAL_REVOKED: "revoked",
}


def _method(authenticator: Authenticator) -> metric_labels.AuthMethod:
    return _METHODS.get(str(getattr(authenticator, "method", "")), "none")


def failure_kind(exc: BrokerError) -> metric_labels.AuthReason:
    """A low-cardinality label for a refused credential (the full reason goes to the log, not the metric)."""
    if exc.status >= 500:
        return "unavailable"
    return _REASONS.get(exc.kind, "malformed")
