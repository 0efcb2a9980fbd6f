"""Storing the audit trail's records (broker.domain.records) safely: free text scrubbed, context bounded, and
the JSON shape of each record in the JSON-lines stream.

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

from collections.abc import Mapping
from dataclasses import dataclass, replace
from datetime import UTC, datetime
from typing import Any

from broker._kits.rfc3339 import format_time

# re-exported: the audit package's modules speak of the domain's records by these names
from broker.domain.records import EVENTS as EVENTS
from broker.domain.records import JWT_LIKE
from broker.domain.records import LOG_EVENTS as LOG_EVENTS
from broker.domain.records import AuditRecord as AuditRecord
from broker.domain.records import Event as Event
from broker.domain.records import SecretBinding as SecretBinding

# what a JWT-looking string in free text is replaced with (JWT_LIKE: a JWS compact serialisation)
REDACTED = "[redacted-jwt]"


@dataclass(frozen=True)
class ContextLimits:
    """Bounds on the caller-supplied context stored with each record (entries, key and value lengths)."""

    max_entries: int = 16
    max_key_length: int = 64
    max_value_length: int = 256


def redact(text: str) -> str:
    return JWT_LIKE.sub(REDACTED, text)


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
