"""The one error type that crosses layers, and the kinds of failure it carries.

A failure is told apart by its `kind` (an ErrorKind), never by its text: the HTTP status, the problem type and
title follow from the kind, and so do the labels of the metrics that count failures. `detail` is safe to show
the caller; `reason` is for the audit trail and logs only (it may say more than the caller should learn).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class ErrorKind(StrEnum):
    # the request itself: 400, 413, 415, 422
    BAD_REQUEST = "bad_request"
    BODY_TOO_LARGE = "body_too_large"
    UNSUPPORTED_MEDIA_TYPE = "unsupported_media_type"
    INVALID_REQUEST = "invalid_request"
    TTL = "ttl"
    AUDIENCE = "audience"
    # who is calling: 401 (the value is the `reason` label of token_broker_auth_failures_total)
    CREDENTIAL_MISSING = "missing"
    CREDENTIAL_NOT_ACCEPTED = "not_accepted"
    CREDENTIAL_MALFORMED = "malformed"
    CREDENTIAL_UNKNOWN = "unknown"
    BAD_SIGNATURE = "bad_signature"
    UNTRUSTED_ISSUER = "untrusted_issuer"
    BAD_AUDIENCE = "bad_audience"
    CREDENTIAL_EXPIRED = "expired"
    CREDENTIAL_NOT_YET_VALID = "not_yet_valid"
    CREDENTIAL_TOO_OLD = "too_old"
    CLAIMS = "claims"
    CREDENTIAL_REVOKED = "revoked"
    # policy: 403 (unknown roles and roles without a grant look the same to the caller)
    UNKNOWN_ROLE = "unknown_role"
    NO_GRANT = "no_grant"
    NAMESPACE = "namespace"
    NAMESPACE_SELECTOR = "namespace_selector"
    # the operators' side: 404, 409
    NOT_FOUND = "not_found"
    ISSUANCE_IN_PROGRESS = "issuance_in_progress"
    NOT_ISSUED = "not_issued"
    NOT_REVOCABLE = "not_revocable"
    CLUSTER_UNKNOWN = "cluster_unknown"
    RATE_LIMITED = "rate_limited"
    # upstream: 502 (refused), 503 (unavailable); VERIFICATION: a token from the API server did not verify
    UPSTREAM_REFUSED = "upstream_refused"
    VERIFICATION = "verification"
    UPSTREAM_UNAVAILABLE = "upstream_unavailable"
    AUDIT_UNAVAILABLE = "audit"
    INTERNAL = "internal"

    @property
    def status(self) -> int:
        return _HTTP[self][0]

    @property
    def type_slug(self) -> str:
        return _HTTP[self][1]

    @property
    def http_title(self) -> str:
        return _TITLES[self.status]


_UNAUTHENTICATED = (401, "unauthenticated")
_FORBIDDEN = (403, "forbidden")
_INVALID = (422, "invalid-request")
# the HTTP status and problem type (urn:kube-token-broker:problem:<slug>) of each kind
_HTTP: dict[ErrorKind, tuple[int, str]] = {
    ErrorKind.BAD_REQUEST: (400, "bad-request"),
    ErrorKind.BODY_TOO_LARGE: (413, "body-too-large"),
    ErrorKind.UNSUPPORTED_MEDIA_TYPE: (415, "unsupported-media-type"),
    ErrorKind.INVALID_REQUEST: _INVALID,
    ErrorKind.TTL: _INVALID,
    ErrorKind.AUDIENCE: _INVALID,
    ErrorKind.CREDENTIAL_MISSING: _UNAUTHENTICATED,
    ErrorKind.CREDENTIAL_NOT_ACCEPTED: _UNAUTHENTICATED,
    ErrorKind.CREDENTIAL_MALFORMED: _UNAUTHENTICATED,
    ErrorKind.CREDENTIAL_UNKNOWN: _UNAUTHENTICATED,
    ErrorKind.BAD_SIGNATURE: _UNAUTHENTICATED,
    ErrorKind.UNTRUSTED_ISSUER: _UNAUTHENTICATED,
    ErrorKind.BAD_AUDIENCE: _UNAUTHENTICATED,
    ErrorKind.CREDENTIAL_EXPIRED: _UNAUTHENTICATED,
    ErrorKind.CREDENTIAL_NOT_YET_VALID: _UNAUTHENTICATED,
    ErrorKind.CREDENTIAL_TOO_OLD: _UNAUTHENTICATED,
    ErrorKind.CLAIMS: _UNAUTHENTICATED,
    ErrorKind.CREDENTIAL_REVOKED: _UNAUTHENTICATED,
    ErrorKind.UNKNOWN_ROLE: _FORBIDDEN,
    ErrorKind.NO_GRANT: _FORBIDDEN,
    ErrorKind.NAMESPACE: _FORBIDDEN,
    ErrorKind.NAMESPACE_SELECTOR: _FORBIDDEN,
    ErrorKind.NOT_FOUND: (404, "not-found"),
    ErrorKind.ISSUANCE_IN_PROGRESS: (409, "issuance-in-progress"),
    ErrorKind.NOT_ISSUED: (409, "not-issued"),
    ErrorKind.NOT_REVOCABLE: (409, "not-revocable"),
    ErrorKind.CLUSTER_UNKNOWN: (409, "cluster-unknown"),
    ErrorKind.RATE_LIMITED: (429, "rate-limited"),
    ErrorKind.UPSTREAM_REFUSED: (502, "upstream-refused"),
    ErrorKind.VERIFICATION: (502, "upstream-refused"),
    ErrorKind.UPSTREAM_UNAVAILABLE: (503, "unavailable"),
    ErrorKind.AUDIT_UNAVAILABLE: (503, "unavailable"),
    ErrorKind.INTERNAL: (500, "internal"),
}
_TITLES = {
    400: "Bad Request",
    401: "Unauthorized",
    403: "Forbidden",
    404: "Not Found",
    409: "Conflict",
    413: "Payload Too Large",
    415: "Unsupported Media Type",
    422: "Unprocessable Entity",
    429: "Too Many Requests",
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
}
# policy and validation refusals (token_broker_tokens_denied_total); every other failure of an issuance is a
# failure (token_broker_tokens_failed_total)
DENIALS = frozenset(
    {
        ErrorKind.INVALID_REQUEST,
        ErrorKind.TTL,
        ErrorKind.AUDIENCE,
        ErrorKind.UNKNOWN_ROLE,
        ErrorKind.NO_GRANT,
        ErrorKind.NAMESPACE,
        ErrorKind.NAMESPACE_SELECTOR,
    }
)


@dataclass
class BrokerError(Exception):
    kind: ErrorKind
    detail: str
    reason: str = ""
    retry_after: float | None = None

    @property
    def status(self) -> int:
        return self.kind.status

    @property
    def title(self) -> str:
        return self.kind.http_title

    @property
    def type_slug(self) -> str:
        return self.kind.type_slug

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


def bad_request(detail: str) -> BrokerError:
    return BrokerError(ErrorKind.BAD_REQUEST, detail)


def unprocessable(detail: str, reason: str = "", kind: ErrorKind = ErrorKind.INVALID_REQUEST) -> BrokerError:
    return BrokerError(kind, detail, reason=reason)


def unauthenticated(kind: ErrorKind, detail: str, reason: str = "") -> BrokerError:
    return BrokerError(kind, detail, reason=reason or detail)


def forbidden(kind: ErrorKind, detail: str, reason: str = "") -> BrokerError:
    return BrokerError(kind, detail, reason=reason or detail)


def upstream_refused(
    detail: str, reason: str = "", kind: ErrorKind = ErrorKind.UPSTREAM_REFUSED
) -> BrokerError:
    return BrokerError(kind, detail, reason=reason or detail)


def unavailable(
    detail: str,
    retry_after: float = 5.0,
    reason: str = "",
    kind: ErrorKind = ErrorKind.UPSTREAM_UNAVAILABLE,
) -> BrokerError:
    return BrokerError(kind, detail, reason=reason or detail, retry_after=retry_after)


def audit_unavailable(reason: str, retry_after: float = 5.0) -> BrokerError:
    """The audit store cannot be written or read: every caller sees the same detail, the log the reason."""
    return BrokerError(
        ErrorKind.AUDIT_UNAVAILABLE, "audit store unavailable", reason=reason, retry_after=retry_after
    )
