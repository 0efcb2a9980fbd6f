"""Pending issuances left by a crash (a pending record is committed before the binding Secret is created) are
repaired through the one revocation path: every Secret labelled with the token id is deleted, then the record
is marked aborted. At start-up any replica repairs what is older than `repair_after_seconds`; the leader's
sweeps repair what has stayed pending for longer than an issuance ever takes."""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from broker.audit.store import AuditStore
from broker.domain.errors import BrokerError
from broker.usecases.revocation import Act, Revocation, directly

from .sweep import Tally

log = logging.getLogger(__name__)

# a pending record older than this during normal operation belongs to an issuance that died
STALE_PENDING_AFTER = timedelta(minutes=10)


async def repair_pending(store: AuditStore, revocation: Revocation, older_than: datetime) -> int:
    """Start-up repair (any replica; idempotent): resolve pending issuances begun at or before `older_than`.

    A record whose Secrets cannot be deleted stays pending and is tried again at the next start or by the
    leader's sweeps. Returns records aborted.
    """
    repaired = 0
    tried: set[str] = set()
    while True:
        batch = [r for r in await store.pending_issuances(older_than) if r.id not in tried]
        if not batch:
            return repaired
        for record in batch:
            tried.add(record.id)
            repaired += int(await revocation.abort(record, directly))


async def repair_stale(
    store: AuditStore, revocation: Revocation, act: Act, now: datetime, tally: Tally, *, after: timedelta
) -> None:
    try:
        pending = await act(lambda: store.pending_issuances(now - after))
    except BrokerError as exc:
        tally.failed += 1
        log.warning("janitor cannot read the audit store", extra={"error": exc.detail})
        return
    for record in pending:
        if await revocation.abort(record, act):
            tally.repaired += 1
        else:
            tally.failed += 1
