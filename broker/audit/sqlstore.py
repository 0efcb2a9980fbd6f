"""The AuditStore over a SQL backend: every write goes through group commit, reads go straight to the backend."""

# ruff: noqa: S608 -- SQL text is assembled only from module constants; every value is a bound parameter

from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal, TypeVar

from broker.domain.errors import BrokerError, audit_unavailable
from broker.domain.records import SHA256_HEX

from .backend import Backend, Row, Tx
from .batch import (
    CHUNK_ROWS,
    COMPLETE,
    EXPIRE,
    FAIL,
    REVOKE,
    Append,
    BatchRunner,
    Begin,
    Raw,
    Step,
    Transition,
    multi_insert,
)
from .chain import ChainWriter, trim
from .groupcommit import CommitStats, GroupCommitter
from .paging import check_limit, decode_cursor, encode_cursor
from .queries import EVENTS_LOG, ISSUANCES, Listing, page_query
from .records import AuditRecord, ContextLimits, SecretBinding, redact, scrubbed, utc_now
from .rows import ISSUANCE_COLUMNS, NEVER, SELECT_ISSUANCE, Codec
from .store import AuditFilter, Page

log = logging.getLogger(__name__)

# rows deleted per retention transaction: short enough not to hold up issuances queued behind it
RETENTION_CHUNK = 2000
T = TypeVar("T")


def _secret_values(secret: SecretBinding | None) -> tuple[str | None, ...]:
    return (None, None, None) if secret is None else (secret.namespace, secret.name, secret.uid)


class SqlAuditStore:
    """Implements broker.audit.store.AuditStore for SQLite and PostgreSQL."""

    def __init__(
        self,
        backend: Backend,
        *,
        retention_days: int = 90,
        max_batch: int = 256,
        max_delay: float = 0.002,
        queue_size: int = 4096,
        timeout: float = 5.0,
        context_limits: ContextLimits | None = None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.backend = backend
        self._codec = Codec(backend)
        self._retention_days = retention_days
        self._timeout = timeout
        self._limits = context_limits or ContextLimits()
        self._clock = clock
        self._chain = ChainWriter(backend, self._codec)
        self._committer = GroupCommitter(
            backend.transaction,
            BatchRunner(backend, self._codec, self._chain.append),
            max_batch=max_batch,
            max_delay=max_delay,
            queue_size=queue_size,
            timeout=timeout,
        )

    @property
    def stats(self) -> CommitStats:
        """Transactions and operations the group-commit writer has committed (for metrics and tests)."""
        return self._committer.stats

    @property
    def codec(self) -> Codec:
        return self._codec

    async def in_writer(self, run: Callable[[Tx], Awaitable[T]]) -> T:
        """Run `run` in the group-commit writer's next transaction (the one connection that writes SQLite):
        what the sinks' cursors and the checkpoints write. BrokerError 503 as for any write."""
        result: T = await self._committer.submit(Raw(run))
        return result

    # -- lifecycle ---------------------------------------------------------------------------------------------
    async def open(self) -> None:
        await self.backend.connect()
        self._committer.start()

    async def close(self) -> None:
        try:
            await self._committer.stop()
        finally:
            await self.backend.close()

    async def __aenter__(self) -> SqlAuditStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def ping(self) -> None:
        if not self._committer.running:
            raise audit_unavailable("audit writer is not running")
        await self._read("SELECT 1 AS ok", ())

    # -- the issuance lifecycle --------------------------------------------------------------------------------
    async def begin_issuance(self, pending: AuditRecord) -> None:
        if pending.event != "pending" or pending.jti is not None or pending.token_sha256 is not None:
            raise ValueError("begin_issuance takes a pending record without jti or token digest")
        if not await self._committer.submit(Begin(scrubbed(pending, self._limits))):
            raise audit_unavailable(f"issuance {pending.id} is already recorded")

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
        if SHA256_HEX.fullmatch(token_sha256) is None:
            raise ValueError(
                "token_sha256 must be the 64 lower-case hex digits of the digest, never the token"
            )
        ends = [t for t in (expires_at, revoke_at) if t is not None]
        t = self._codec.time
        values = (
            status,
            jti,
            token_sha256,
            t(issued_at),
            t(expires_at),
            t(revoke_at),
            ttl_granted,
            *_secret_values(bound_secret),
            t(self._clock()),
            t(min(ends) if ends else NEVER),
        )
        [event] = await self._committer.submit(
            Transition(COMPLETE, (Step(id, issued_at, values),), report_state=True)
        )
        if not isinstance(event, AuditRecord):
            # e.g. start-up repair on another replica aborted it: the token must not be handed out
            raise audit_unavailable(f"issuance {id} cannot be completed: it is {event}")
        return event

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
        if event not in ("failed", "aborted"):
            raise ValueError("event must be 'failed' or 'aborted'")
        at = at or self._clock()
        values = (event, scrubbed_reason(reason), status, *_secret_values(bound_secret), self._codec.time(at))
        [result] = await self._committer.submit(Transition(FAIL, (Step(id, at, values),)))
        return result if isinstance(result, AuditRecord) else None

    async def record_denial(self, denial: AuditRecord) -> AuditRecord:
        if denial.event != "denied":
            raise ValueError("record_denial takes a record with event 'denied'")
        record = replace(scrubbed(denial, self._limits), event_id=str(uuid.uuid4()))
        await self._committer.submit(Append(record))
        return record

    async def mark_revoked(self, id: str, by: str, at: datetime, reason: str = "") -> AuditRecord | None:
        t = self._codec.time
        values = (by, t(at), scrubbed_reason(reason), t(at))
        [result] = await self._committer.submit(Transition(REVOKE, (Step(id, at, values),)))
        return result if isinstance(result, AuditRecord) else None

    async def mark_expired(self, ids: Sequence[str], at: datetime | None = None) -> list[AuditRecord]:
        if not ids:
            return []
        at = at or self._clock()
        encoded = (self._codec.time(at),)
        steps = tuple(Step(i, at, encoded) for i in dict.fromkeys(ids))
        results = await self._committer.submit(Transition(EXPIRE, steps))
        return [r for r in results if isinstance(r, AuditRecord)]

    # -- background work ---------------------------------------------------------------------------------------
    async def pending_issuances(self, older_than: datetime, limit: int = 1000) -> list[AuditRecord]:
        rows = await self._read(
            f"SELECT {SELECT_ISSUANCE} FROM issuances WHERE event = 'pending' AND ts <= ? ORDER BY ts, id LIMIT ?",
            [self._codec.time(older_than), limit],
        )
        return [self._codec.record(r) for r in rows]

    async def due_for_cleanup(self, now: datetime, limit: int = 500) -> list[AuditRecord]:
        rows = await self._read(
            f"SELECT {SELECT_ISSUANCE} FROM issuances WHERE event = 'issued' AND secret_name IS NOT NULL "
            "AND live_until <= ? ORDER BY live_until, id LIMIT ?",
            [self._codec.time(now), limit],
        )
        return [self._codec.record(r) for r in rows]

    async def apply_retention(self, now: datetime) -> int:
        if self._retention_days <= 0:
            return 0
        cutoff = self._codec.time(now - timedelta(days=self._retention_days))
        t_now = self._codec.time(now)
        # keep what start-up repair or the janitor still has to act on, and tokens still live
        issuances = _delete(
            "DELETE FROM issuances WHERE id IN (SELECT id FROM issuances WHERE ts < ? AND "
            "(event IN ('denied', 'failed', 'aborted', 'revoked', 'expired') OR "
            "(event = 'issued' AND secret_name IS NULL AND live_until <= ?)) ORDER BY ts LIMIT ?) RETURNING 1",
            [cutoff, t_now, RETENTION_CHUNK],
        )

        async def events(tx: Tx) -> int:
            # a prefix of the chain, so what remains still verifies from the anchor (chain.trim)
            return await trim(tx, self.backend, cutoff, RETENTION_CHUNK)

        total = 0
        for step in (events, issuances):
            while True:
                deleted = await self._committer.submit(Raw(step))
                total += deleted
                if deleted < RETENTION_CHUNK:
                    break
        if total:
            log.info("audit retention removed %d rows older than %d days", total, self._retention_days)
        return total

    # -- reads -------------------------------------------------------------------------------------------------
    async def get_issuance(self, id: str) -> AuditRecord | None:
        rows = await self._read(f"SELECT {SELECT_ISSUANCE} FROM issuances WHERE id = ?", [id])
        return self._codec.record(rows[0]) if rows else None

    async def find_by_jti(self, jti: str) -> AuditRecord | None:
        rows = await self._read(
            f"SELECT {SELECT_ISSUANCE} FROM issuances WHERE jti = ? ORDER BY ts DESC, id DESC LIMIT 1", [jti]
        )
        return self._codec.record(rows[0]) if rows else None

    async def query_issuances(
        self, filter: AuditFilter, cursor: str | None = None, limit: int = 50, *, now: datetime | None = None
    ) -> Page:
        return await self._page(ISSUANCES, filter, cursor, limit, now or self._clock())

    async def query_events(self, filter: AuditFilter, cursor: str | None = None, limit: int = 50) -> Page:
        return await self._page(EVENTS_LOG, filter, cursor, limit, self._clock())

    async def _page(
        self, listing: Listing, f: AuditFilter, cursor: str | None, limit: int, now: datetime
    ) -> Page:
        check_limit(limit)
        after = decode_cursor(listing.kind, cursor) if cursor else None
        sql, args = page_query(listing, f, self._codec, after=after, limit=limit + 1, now=now)
        rows = await self._read(sql, args)
        is_event = listing is EVENTS_LOG
        items = tuple(self._codec.record(r, event_id=is_event) for r in rows[:limit])
        next_cursor = None
        if len(rows) > limit:
            last = items[-1]
            key = last.event_id if is_event else last.id
            assert key is not None
            next_cursor = encode_cursor(listing.kind, last.time, key)
        return Page(items, next_cursor)

    async def _read(self, sql: str, args: Sequence[Any]) -> list[Row]:
        try:
            async with asyncio.timeout(self._timeout):
                return await self.backend.fetch(sql, args)
        except BrokerError:
            raise
        except Exception as err:
            log.error("audit read failed: %s: %s", type(err).__name__, err)
            raise audit_unavailable(f"audit read failed: {type(err).__name__}: {err}") from err

    # -- maintenance -------------------------------------------------------------------------------------------
    async def import_records(self, records: Sequence[AuditRecord], *, with_events: bool = True) -> None:
        """Insert finished records directly in one transaction, bypassing group commit (benchmarks, restores).

        Each record becomes an issuance row in its state and, with `with_events`, that decision's event.
        """
        c = self._codec
        now = self._clock()
        clean = [scrubbed(r, self._limits) for r in records]
        issuances = [c.issuance_values(r, now) for r in clean if r.event != "denied"]
        events = [
            replace(r, event_id=r.event_id or str(uuid.uuid4()))
            for r in clean
            if with_events and r.event != "pending"
        ]
        try:
            async with self.backend.transaction() as tx:
                for start in range(0, len(issuances), CHUNK_ROWS):
                    chunk = issuances[start : start + CHUNK_ROWS]
                    await tx.execute(
                        multi_insert("issuances", ISSUANCE_COLUMNS, len(chunk)), [v for r in chunk for v in r]
                    )
                await self._chain.append(tx, events)
        except Exception as err:
            raise audit_unavailable(f"audit import failed: {type(err).__name__}: {err}") from err


def scrubbed_reason(reason: str) -> str:
    return redact(reason)[:4096]


def _delete(sql: str, args: list[Any]) -> Callable[[Tx], Awaitable[int]]:
    async def run(tx: Tx) -> int:
        return len(await tx.fetch(sql, args))

    return run
