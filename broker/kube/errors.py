"""What a failed call to the API server means, and how it becomes a BrokerError.

Two internal exceptions cross this package's inside: `KubeApiError` (the server answered non-2xx) and
`KubeTransportError` (no answer: timeout, refused, reset). They never leave it: api.py turns every one into a
`BrokerError` through one table, except the answers a resource call expects (a 404 that is "already gone").
"""

from __future__ import annotations

import email.utils
import json
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

# Retry-After when the server gives none: long enough not to hammer a struggling server, short enough for CI.
DEFAULT_RETRY_AFTER = 2.0
# A Status message is the server's text; keep it to a sane length in anything we pass on.
_MAX_MESSAGE = 400

# rbac's forbidden message: `<what> is forbidden: User "u" cannot <verb> resource "<res>" in API group "<g>"
# in the namespace "<ns>"` (or `at the cluster scope`); see authorizer's forbidden message builder.
_FORBIDDEN = re.compile(
    r'cannot (?P<verb>\S+) resource "(?P<resource>[^"]*)" in API group "(?P<group>[^"]*)"'
    r'(?: (?P<scope>in the namespace "[^"]*"|at the cluster scope))?'
)


@dataclass
class KubeApiError(Exception):
    """The API server answered a non-2xx status; a `Status` body when it sent one."""

    status: int
    reason: str
    message: str
    details: Mapping[str, Any] = field(default_factory=dict)
    retry_after: float | None = None
    method: str = ""
    path: str = ""

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.status} {self.reason}: {self.message}"

    @property
    def transient(self) -> bool:
        # 429 from priority-and-fairness or max-in-flight, 5xx from an overloaded or restarting server.
        # 501 Not Implemented is an answer, not a hiccup.
        return self.status == 429 or (self.status >= 500 and self.status != 501)

    @property
    def details_kind(self) -> str:
        kind = self.details.get("kind", "")
        return kind if isinstance(kind, str) else ""

    @property
    def invalid_fields(self) -> frozenset[str]:
        """The fields a 422 Invalid names (details.causes[].field), e.g. "spec.expirationSeconds"."""
        causes = self.details.get("causes")
        return (
            frozenset(c["field"] for c in causes if isinstance(c, dict) and isinstance(c.get("field"), str))
            if isinstance(causes, list)
            else frozenset()
        )


@dataclass
class KubeTransportError(Exception):
    """No usable answer: the call timed out, the connection was refused or reset, TLS failed."""

    kind: str  # "timeout" | "connection" | "tls" | "protocol"
    message: str
    method: str = ""
    path: str = ""
    retry_after: float | None = None

    def __str__(self) -> str:
        return f"{self.method} {self.path}: {self.kind}: {self.message}"

    @property
    def transient(self) -> bool:
        # a TLS verification failure or a garbled answer will fail the same way next time
        return self.kind in ("timeout", "connection")


KubeError = KubeApiError | KubeTransportError


def is_transient(exc: BaseException) -> bool:
    return isinstance(exc, KubeApiError | KubeTransportError) and exc.transient


def parse_retry_after(value: str | None, *, now: float | None = None) -> float | None:
    """RFC 9110 Retry-After: delay-seconds or an HTTP-date. Garbage → None; a past date → 0."""
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if value.isdigit():
        return float(value)
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError):
        return None
    if when.tzinfo is None:
        return None
    return max(0.0, when.timestamp() - (time.time() if now is None else now))


def _clip(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= _MAX_MESSAGE else text[: _MAX_MESSAGE - 1] + "…"


def parse_failure(
    status: int, headers: Mapping[str, str], body: bytes, *, method: str = "", path: str = ""
) -> KubeApiError:
    """Read a non-2xx answer: a `Status` JSON body, or the plain text 429 of API priority and fairness.

    `Retry-After` (header) wins over `details.retryAfterSeconds`; the apiserver sets both to the same value.
    """
    retry_after = parse_retry_after(headers.get("Retry-After"))
    reason = ""
    message = ""
    details: dict[str, Any] = {}
    parsed: Any = None
    if body[:1] == b"{":
        try:
            parsed = json.loads(body)
        except ValueError:
            parsed = None
    if isinstance(parsed, dict) and parsed.get("kind") == "Status":
        reason = str(parsed.get("reason") or "")
        message = str(parsed.get("message") or "")
        raw_details = parsed.get("details")
        if isinstance(raw_details, dict):
            details = raw_details
            seconds = raw_details.get("retryAfterSeconds")
            if retry_after is None and isinstance(seconds, int | float) and not isinstance(seconds, bool):
                retry_after = float(seconds)
    else:
        # plain text (priority and fairness, a proxy in front of the server, an HTML error page)
        message = body.decode("utf-8", "replace")
    if not reason:
        reason = _REASONS.get(status, "Unknown")
    if not message:
        message = reason
    return KubeApiError(status, reason, _clip(message), details, retry_after, method, path)


_REASONS = {
    400: "BadRequest",
    401: "Unauthorized",
    403: "Forbidden",
    404: "NotFound",
    405: "MethodNotAllowed",
    409: "Conflict",
    410: "Gone",
    415: "UnsupportedMediaType",
    422: "Invalid",
    429: "TooManyRequests",
    500: "InternalError",
    502: "BadGateway",
    503: "ServiceUnavailable",
    504: "Timeout",
}


def missing_permission(message: str) -> str | None:
    """The permission a 403 names: `create resource "serviceaccounts/token" in API group "" in the namespace "ci"`."""
    m = _FORBIDDEN.search(message)
    if m is None:
        return None
    text = f'{m.group("verb")} resource "{m.group("resource")}" in API group "{m.group("group")}"'
    if m.group("scope"):
        text += " " + m.group("scope")
    return text
