"""A JSON-lines copy of every audit event, for a SIEM: one object per line, to a file or standard output.

The database stays the record of truth and the gate for issuance: a line is written only after its event
committed, and a failure to write the line is logged, not raised (the token's record already exists).
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import sys
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from typing import Literal

from broker.domain.errors import audit_unavailable

from .records import AuditRecord, SecretBinding, record_to_dict
from .store import AuditFilter, AuditStore, Page

log = logging.getLogger(__name__)


def record_line(record: AuditRecord) -> str:
    return json.dumps(record_to_dict(record), separators=(",", ":"), ensure_ascii=False) + "\n"


class JsonlSink:
    """Appends lines to `path` (created 0600) or to standard output when `path` is "-".

    Writes happen on one dedicated thread, in submission order, so a slow disk or a blocked pipe never
    stalls the event loop. Files get unbuffered O_APPEND writes: a failed write leaves nothing queued to be
    replayed (and duplicated) by the next one.
    """

    def __init__(self, path: str) -> None:
        self.path = path
        self._fd: int | None = None
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="audit-jsonl")
        self.failures = 0

    def _open_sync(self) -> None:
        if self.path != "-":
            self._fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)

    async def open(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._open_sync)

    def _write_sync(self, data: str) -> None:
        if self.path == "-":
            sys.stdout.write(data)
            sys.stdout.flush()
            return
        if self._fd is None:
            raise OSError("JSON-lines sink is not open")
        view = memoryview(data.encode())
        while view:
            view = view[os.write(self._fd, view) :]

    async def write(self, records: Sequence[AuditRecord]) -> None:
        if not records:
            return
        data = "".join(record_line(r) for r in records)
        try:
            await asyncio.get_running_loop().run_in_executor(self._executor, self._write_sync, data)
        except (OSError, ValueError) as err:
            self.failures += 1
            log.error("audit JSON-lines write to %s failed: %s", self.path, err)

    def _close_sync(self) -> None:
        fd, self._fd = self._fd, None
        if fd is not None:
            os.close(fd)

    async def close(self) -> None:
        await asyncio.get_running_loop().run_in_executor(self._executor, self._close_sync)
        self._executor.shutdown(wait=False)


class TeeStore:
    """An AuditStore that copies every committed event to a JsonlSink; everything else passes through."""

    def __init__(self, inner: AuditStore, sink: JsonlSink) -> None:
        self.inner = inner
        self.sink = sink

    async def open(self) -> None:
        await self.inner.open()
        try:
            await self.sink.open()
        except OSError as err:
            await self.inner.close()
            raise audit_unavailable(f"cannot open the JSON-lines stream {self.sink.path}: {err}") from err

    async def close(self) -> None:
        try:
            await self.inner.close()
        finally:
            await self.sink.close()

    async def __aenter__(self) -> TeeStore:
        await self.open()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def ping(self) -> None:
        await self.inner.ping()

    async def begin_issuance(self, pending: AuditRecord) -> None:
        # pending is a state, not a decision: the stream carries the outcome that follows
        await self.inner.begin_issuance(pending)

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
        event = await self.inner.complete_issuance(
            id,
            jti=jti,
            token_sha256=token_sha256,
            issued_at=issued_at,
            expires_at=expires_at,
            revoke_at=revoke_at,
            bound_secret=bound_secret,
            ttl_granted=ttl_granted,
            status=status,
        )
        await self.sink.write([event])
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
        record = await self.inner.fail_issuance(
            id, reason, event=event, at=at, status=status, bound_secret=bound_secret
        )
        if record is not None:
            await self.sink.write([record])
        return record

    async def record_denial(self, denial: AuditRecord) -> AuditRecord:
        record = await self.inner.record_denial(denial)
        await self.sink.write([record])
        return record

    async def mark_revoked(self, id: str, by: str, at: datetime, reason: str = "") -> AuditRecord | None:
        record = await self.inner.mark_revoked(id, by, at, reason)
        if record is not None:
            await self.sink.write([record])
        return record

    async def mark_expired(self, ids: Sequence[str], at: datetime | None = None) -> list[AuditRecord]:
        records = await self.inner.mark_expired(ids, at)
        await self.sink.write(records)
        return records

    async def pending_issuances(self, older_than: datetime, limit: int = 1000) -> list[AuditRecord]:
        return await self.inner.pending_issuances(older_than, limit)

    async def due_for_cleanup(self, now: datetime, limit: int = 500) -> list[AuditRecord]:
        return await self.inner.due_for_cleanup(now, limit)

    async def apply_retention(self, now: datetime) -> int:
        return await self.inner.apply_retention(now)

    async def get_issuance(self, id: str) -> AuditRecord | None:
        return await self.inner.get_issuance(id)

    async def find_by_jti(self, jti: str) -> AuditRecord | None:
        return await self.inner.find_by_jti(jti)

    async def query_issuances(
        self, filter: AuditFilter, cursor: str | None = None, limit: int = 50, *, now: datetime | None = None
    ) -> Page:
        return await self.inner.query_issuances(filter, cursor, limit, now=now)

    async def query_events(self, filter: AuditFilter, cursor: str | None = None, limit: int = 50) -> Page:
        return await self.inner.query_events(filter, cursor, limit)
