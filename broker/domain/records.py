"""The audit trail's vocabulary: what an issuance record holds, how listings filter them, a page of them.

Model: `issuances` hold one record per token the broker set out to issue, keyed by the token id; its `event`
is the issuance's current state: ``pending`` (write-ahead, committed before the TokenRequest) → ``issued`` |
``failed`` | ``aborted`` (repair); an issued token may later become ``revoked`` or ``expired``. `time` is when
the issuance began and never changes. `events` are the append-only log, one record per decision (``issued``,
``denied``, ``failed``, ``aborted``, ``revoked``, ``expired``), each a full snapshot with its own `event_id`.
The raw token never enters a record: only its jti and SHA-256.
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Literal, get_args

Event = Literal["pending", "issued", "denied", "failed", "revoked", "expired", "aborted"]
EVENTS: frozenset[str] = frozenset(get_args(Event))
# the decisions the append-only log holds (a pending issuance is a state, not a decision)
LOG_EVENTS: frozenset[str] = EVENTS - {"pending"}

# A JWS compact serialisation: base64url header starting with '{"' ("eyJ"), payload, signature.
JWT_LIKE = re.compile(r"eyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*")
SHA256_HEX = re.compile(r"[0-9a-f]{64}")


@dataclass(frozen=True)
class SecretBinding:
    """The Secret a revocable token is bound to (TokenRequest boundObjectRef): deleting it kills the token."""

    namespace: str
    name: str
    uid: str = ""


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
        if self.token_sha256 is not None and SHA256_HEX.fullmatch(self.token_sha256) is None:
            raise ValueError("token_sha256 must be 64 lower-case hex digits (the digest, never the token)")
        if self.jti is not None and JWT_LIKE.search(self.jti):
            raise ValueError("jti looks like a token")

    def live_at(self, now: datetime) -> bool:
        """Issued, not revoked, and neither past its exp nor past the revoke-at of a short revocable token."""
        if self.event != "issued":
            return False
        return all(t is None or t > now for t in (self.expires_at, self.revoke_at))


@dataclass(frozen=True)
class AuditFilter:
    """All set fields must match (AND). Times: since <= time < until."""

    caller: str | None = None
    role: str | None = None
    namespace: str | None = None
    cluster: str | None = None
    # issuances: the current state; events: the decision
    event: str | None = None
    # the records of one issuance (events: its history)
    token_id: str | None = None
    # issuances only: True = live at `now` (issued, not revoked, before exp and revoke-at); False = not live
    active: bool | None = None
    since: datetime | None = None
    until: datetime | None = None


@dataclass(frozen=True)
class Page:
    """Newest first. `next_cursor` is None on the last page; pass it back unchanged for the next one."""

    items: tuple[AuditRecord, ...]
    next_cursor: str | None


def token_sha256(token: str) -> str:
    """What a record keeps of a token: its SHA-256 (hex), never the token."""
    return hashlib.sha256(token.encode()).hexdigest()
