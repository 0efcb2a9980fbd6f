"""The one error type that crosses layers and becomes an application/problem+json response."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass
class BrokerError(Exception):
    """status: the HTTP status the caller gets; title: short and fixed per kind; detail: safe to show the caller.

    `reason` is for the audit trail and logs only (it may say more than the caller should learn).
    """

    status: int
    title: str
    detail: str
    reason: str = ""
    retry_after: float | None = None
    type_slug: str = "about:blank"

    def __str__(self) -> str:
        return f"{self.status} {self.title}: {self.detail}"


def bad_request(detail: str) -> BrokerError:
    return BrokerError(400, "Bad Request", detail, type_slug="bad-request")


def unprocessable(detail: str) -> BrokerError:
    return BrokerError(422, "Unprocessable Entity", detail, type_slug="invalid-request")


def unauthenticated(detail: str = "authentication required", reason: str = "") -> BrokerError:
    return BrokerError(401, "Unauthorized", detail, reason=reason or detail, type_slug="unauthenticated")


def forbidden(detail: str, reason: str = "") -> BrokerError:
    return BrokerError(403, "Forbidden", detail, reason=reason or detail, type_slug="forbidden")


def upstream_refused(detail: str, reason: str = "") -> BrokerError:
    return BrokerError(502, "Bad Gateway", detail, reason=reason or detail, type_slug="upstream-refused")


def unavailable(detail: str, retry_after: float = 5.0, reason: str = "") -> BrokerError:
    return BrokerError(
        503,
        "Service Unavailable",
        detail,
        reason=reason or detail,
        retry_after=retry_after,
        type_slug="unavailable",
    )
