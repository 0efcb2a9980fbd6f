"""The audit trail's data: one record shape for issuances (current state) and for the event log (history).

Model (see also broker/audit/__init__.py):

* `issuances` — one row per token the broker set out to issue, keyed by the token id. Its `event` is the
  issuance's current state: ``pending`` (write-ahead, committed before the TokenRequest) → ``issued`` |
  ``failed`` | ``aborted`` (start-up repair); an issued token may later become ``revoked`` or ``expired``
  (the janitor deleted its bound Secret). `time` is when the issuance began and never changes, so paging on
  (time, id) is stable.
* `events` — append-only, one row per decision: ``issued``, ``denied``, ``failed``, ``aborted``, ``revoked``,
  ``expired``. Each row is a full snapshot (who, what, where) so the log reads on its own and survives the
  issuance row's retention. `id` is the issuance's token id (a fresh id for a denial, which has no issuance);
  `event_id` is the event's own key. ``pending`` is a state, not a decision, and has no event.

The raw token never enters a record: only its jti and SHA-256. As a second line of defence every free-text
field is scrubbed of JWT-looking strings before it is stored (a CI job pasting its token into `context`).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from typing import Any, Literal, get_args

from broker._kits.rfc3339 import format_time

Event = Literal["pending", "issued", "denied", "failed", "revoked", "expired", "aborted"]
EVENTS: frozenset[str] = frozenset(get_args(Event))
# the decisions the append-only log holds (a pending issuance is a state, not a decision)
LOG_EVENTS: frozenset[str] = EVENTS - {"pending"}

# A JWS compact serialisation: base64url header starting with '{"' ("eyJ"), payload, signature.
_JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
REDACTED = "[redacted-jwt]"
_SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SecretBinding:
    """The Secret a revocable token is bound to (TokenRequest boundObjectRef): deleting it kills the token."""

    namespace: str
    name: str
    uid: str = ""


@dataclass(frozen=True)
class ContextLimits:
    """Bounds on the caller-supplied context stored with each record (entries, key and value lengths)."""

    max_entries: int = 16
    max_key_length: int = 64
    max_value_length: int = 256


@dataclass(frozen=True)
class AuditRecord:
    """One issuance (its current state) or one event of the log; times are timezone-aware UTC."""

    # the issuance's token id (a uuid); a denial's own id
    id: str
    # issuance: when it began (never changes); event: when the decision was made
    time: datetime
    event: Event
    caller_user: str
    caller_method: str
    caller_groups: tuple[str, ...] = ()
    source_address: str = ""
    user_agent: str = ""
    role: str = ""
    cluster: str = ""
    namespace: str = ""
    service_account: str = ""
    audiences: tuple[str, ...] = ()
    ttl_requested: int | None = None
    ttl_granted: int | None = None
    jti: str | None = None
    # hex SHA-256 of the token: lets an operator match a token they hold without the store holding any
    token_sha256: str | None = None
    issued_at: datetime | None = None
    # the JWT's exp; None for a legacy Secret token (no exp, lives until its Secret is deleted)
    expires_at: datetime | None = None
    # revocable tokens asked for less than the TokenRequest 600 s floor: when the janitor deletes the Secret
    revoke_at: datetime | None = None
    bound_secret: SecretBinding | None = None
    context: Mapping[str, str] = field(default_factory=dict)
    # why (denied: which rule; failed: the upstream error; revoked: the operator's note)
    reason: str = ""
    # the HTTP status the caller got for this decision (201, 403, 502, 503, ...)
    status: int | None = None
    request_id: str = ""
    revoked_by: str | None = None
    revoked_at: datetime | None = None
    # events only: the event's own key (None on issuance records)
    event_id: str | None = None

    def __post_init__(self) -> None:
        if self.event not in EVENTS:
            raise ValueError(f"unknown audit event {self.event!r}")
        for name in ("time", "issued_at", "expires_at", "revoke_at", "revoked_at"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise ValueError(f"{name} must be timezone-aware")
        if self.token_sha256 is not None and _SHA256_HEX.fullmatch(self.token_sha256) is None:
            raise ValueError("token_sha256 must be 64 lower-case hex digits (the digest, never the token)")
        if self.jti is not None and _JWT_LIKE.search(self.jti):
            raise ValueError("jti looks like a token")

    def live_at(self, now: datetime) -> bool:
        """Issued, not revoked, and neither past its exp nor past the revoke-at of a short revocable token."""
        if self.event != "issued":
            return False
        return all(t is None or t > now for t in (self.expires_at, self.revoke_at))


def redact(text: str) -> str:
    return _JWT_LIKE.sub(REDACTED, text)


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[: max(limit - 1, 0)] + "…"


def bound_context(context: Mapping[str, str], limits: ContextLimits) -> dict[str, str]:
    """At most `max_entries` entries (first ones kept), keys and values clipped, JWT-looking text redacted.

    The HTTP edge already refuses oversized context; this keeps the store safe from any other caller.
    """
    bounded: dict[str, str] = {}
    for key, value in context.items():
        if len(bounded) >= limits.max_entries:
            break
        bounded[_clip(redact(str(key)), limits.max_key_length)] = _clip(
            redact(str(value)), limits.max_value_length
        )
    return bounded


def scrubbed(record: AuditRecord, limits: ContextLimits) -> AuditRecord:
    """The record as it may be stored: free text scrubbed of tokens, context bounded."""
    changes: dict[str, Any] = {
        "user_agent": _clip(redact(record.user_agent), 1024),
        "reason": _clip(redact(record.reason), 4096),
        "request_id": _clip(redact(record.request_id), 256),
        "context": bound_context(record.context, limits),
    }
    if all(getattr(record, name) == value for name, value in changes.items()):
        return record  # the usual case; replace() is the costly part of a write
    return replace(record, **changes)


def utc_now() -> datetime:
    return datetime.now(UTC)


def record_to_dict(record: AuditRecord) -> dict[str, Any]:
    """A JSON-ready view (RFC 3339 UTC times), the shape of each line of the JSON-lines stream."""
    secret = record.bound_secret
    return {
        "id": record.id,
        "event_id": record.event_id,
        "time": format_time(record.time, "microseconds"),
        "event": record.event,
        "status": record.status,
        "caller": {
            "user": record.caller_user,
            "method": record.caller_method,
            "groups": list(record.caller_groups),
        },
        "source_address": record.source_address,
        "user_agent": record.user_agent,
        "role": record.role,
        "cluster": record.cluster,
        "namespace": record.namespace,
        "service_account": record.service_account,
        "audiences": list(record.audiences),
        "ttl_requested": record.ttl_requested,
        "ttl_granted": record.ttl_granted,
        "jti": record.jti,
        "token_sha256": record.token_sha256,
        "issued_at": format_time(record.issued_at, "microseconds"),
        "expires_at": format_time(record.expires_at, "microseconds"),
        "revoke_at": format_time(record.revoke_at, "microseconds"),
        "bound_secret": None
        if secret is None
        else {"namespace": secret.namespace, "name": secret.name, "uid": secret.uid},
        "context": dict(record.context),
        "reason": record.reason,
        "request_id": record.request_id,
        "revoked_by": record.revoked_by,
        "revoked_at": format_time(record.revoked_at, "microseconds"),
    }
