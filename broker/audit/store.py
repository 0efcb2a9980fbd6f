"""The audit store interface: what the issuer, the janitor, start-up repair and the HTTP layer may ask of it.

Every write either commits durably or raises `BrokerError` 503 ("audit store unavailable"): the issuer fails
closed on it. Reads raise the same 503 when the store cannot be reached.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Literal, Protocol

# re-exported: the audit package's modules speak of the domain's filters and pages by these names
from broker.domain.records import AuditFilter as AuditFilter
from broker.domain.records import Page as Page

from .records import AuditRecord, SecretBinding

# the largest page a query returns
MAX_PAGE = 1000


class InvalidCursor(ValueError):
    """A cursor that this store did not hand out (or one from another query kind)."""


class AuditStore(Protocol):
    async def open(self) -> None:
        """Connect and migrate the schema to the current version (safe when several replicas start at once)."""
        ...

    async def close(self) -> None:
        """Commit what is queued, then disconnect."""
        ...

    async def ping(self) -> None:
        """Raise BrokerError 503 unless the store answers."""
        ...

    # -- the issuance lifecycle (write-ahead) ------------------------------------------------------------------
    async def begin_issuance(self, pending: AuditRecord) -> None:
        """Commit a `pending` record before the TokenRequest. 503 when it cannot be written (or the id exists)."""
        ...

    async def complete_issuance(
        self,
        id: str,
        *,
        jti: str | None,
        token_sha256: str,
        issued_at: datetime,
        expires_at: datetime | None,
        revoke_at: datetime | None = None,
        bound_secret: SecretBinding | None = None,
        ttl_granted: int | None = None,
        status: int = 201,
    ) -> AuditRecord:
        """pending → issued, plus an `issued` event; returns that event. 503 if the record is no longer
        pending (e.g. start-up repair of another replica aborted it): the token must then not be handed out."""
        ...

    async def fail_issuance(
        self,
        id: str,
        reason: str,
        *,
        event: Literal["failed", "aborted"] = "failed",
        at: datetime | None = None,
        status: int | None = None,
        bound_secret: SecretBinding | None = None,
    ) -> AuditRecord | None:
        """pending → failed | aborted, plus the event; None if the record was not pending."""
        ...

    async def record_denial(self, denial: AuditRecord) -> AuditRecord:
        """Append a `denied` event (no issuance row); returns it as stored."""
        ...

    async def mark_revoked(self, id: str, by: str, at: datetime, reason: str = "") -> AuditRecord | None:
        """issued → revoked, plus the event; None (falsy) if the token was not in state issued."""
        ...

    async def mark_expired(self, ids: Sequence[str], at: datetime | None = None) -> list[AuditRecord]:
        """issued → expired for each id (the janitor deleted its Secret); returns the events written."""
        ...

    # -- background work ---------------------------------------------------------------------------------------
    async def pending_issuances(self, older_than: datetime, limit: int = 1000) -> list[AuditRecord]:
        """Pending records that began at or before `older_than`, oldest first (start-up repair)."""
        ...

    async def due_for_cleanup(self, now: datetime, limit: int = 500) -> list[AuditRecord]:
        """Issued, not revoked, with a bound Secret, whose exp or revoke-at is <= now; soonest first."""
        ...

    async def apply_retention(self, now: datetime) -> int:
        """Delete events and finished issuances older than the retention period; returns rows deleted."""
        ...

    # -- reads -------------------------------------------------------------------------------------------------
    async def get_issuance(self, id: str) -> AuditRecord | None: ...

    async def find_by_jti(self, jti: str) -> AuditRecord | None: ...

    async def query_issuances(
        self, filter: AuditFilter, cursor: str | None = None, limit: int = 50, *, now: datetime | None = None
    ) -> Page: ...

    async def query_events(self, filter: AuditFilter, cursor: str | None = None, limit: int = 50) -> Page:
        """The append-only log. `filter.active` does not apply here (ValueError)."""
        ...
