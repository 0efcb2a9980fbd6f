"""The janitor: ends tokens on time and cleans up after them and after crashes, one small step after another:
repair of stale pending issuances (repair.py), expiry (expiry.py), ephemeral service accounts
(retirement.py), audit retention (retention.py), the active-tokens gauge (gauges.py). The steps that end an
issuance go through the one revocation path (broker.usecases.revocation).

With several replicas only the holder of the janitor Lease acts (leader.py), and it re-checks its leadership
before every step: a step never runs past the moment this replica's leadership could lapse.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping
from datetime import datetime, timedelta
from typing import TypeVar

from broker import metrics
from broker.audit.records import utc_now
from broker.audit.store import AuditStore
from broker.domain.roles import Role
from broker.usecases.clusters import Clusters
from broker.usecases.revocation import REPAIR_REASON, Revocation

from .expiry import expire_due
from .gauges import ACTIVE_COUNT_LIMIT, ActiveTokens, ActiveTokensHook
from .leader import LeaseElector, NotLeader
from .repair import STALE_PENDING_AFTER, repair_pending, repair_stale
from .retention import RETENTION_EVERY_SECONDS, Retention
from .retirement import Retirement
from .sweep import SweepResult, Tally

__all__ = ["REPAIR_REASON", "Janitor", "SweepResult"]

log = logging.getLogger(__name__)
T = TypeVar("T")

SWEEP_BATCH = 500


class Janitor:
    """`run()` sweeps every `interval` seconds while this replica leads (always, when `elector` is None:
    single-replica mode); `repair_pending()` is the start-up repair any replica may run."""

    def __init__(
        self,
        store: AuditStore,
        clusters: Clusters,
        elector: LeaseElector | None,
        *,
        interval: float,
        roles: Callable[[], Mapping[str, Role]] = dict,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        on_sweep: Callable[[SweepResult], None] | None = None,
        repair_after: timedelta = STALE_PENDING_AFTER,
        retention_every: float = RETENTION_EVERY_SECONDS,
        batch_size: int = SWEEP_BATCH,
        on_active_tokens: ActiveTokensHook | None = metrics.set_active_tokens,
        active_count_limit: int = ACTIVE_COUNT_LIMIT,
    ) -> None:
        """on_active_tokens: receives live tokens by role after each sweep of the leader, and {} on a replica
        that does not lead."""
        if interval <= 0:
            raise ValueError("the janitor interval must be positive")
        self._store = store
        self._elector = elector
        self._interval = interval
        self._clock = clock
        self._monotonic = monotonic
        self._on_sweep = on_sweep
        self._repair_after = repair_after
        self._batch = batch_size
        self._revocation = Revocation(store, clusters, clock=clock)
        self._retirement = Retirement(store, clusters, roles)
        self._retention = Retention(store, every=retention_every, monotonic=monotonic)
        self._gauge = ActiveTokens(store, on_active_tokens, active_count_limit)

    # -- leadership ------------------------------------------------------------------------------------------
    def may_act(self) -> bool:
        return self._elector is None or self._elector.still_leader()

    async def _act(self, step: Callable[[], Awaitable[T]]) -> T:
        """Run one step only while leader; it is cut short (NotLeader) the moment leadership ends."""
        if self._elector is None:
            return await step()
        async with self._elector.leading():
            return await step()

    # -- the loop ----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Sweep every `interval` seconds until cancelled; a failed sweep is logged and the next one runs."""
        while True:
            started = self._monotonic()
            try:
                await self.sweep_once()
            except Exception:
                log.exception("janitor sweep failed")
            await asyncio.sleep(max(0.0, self._interval - (self._monotonic() - started)))

    async def sweep_once(self, now: datetime | None = None) -> SweepResult:
        now = now or self._clock()
        started = self._monotonic()
        if not self.may_act():
            self._gauge.publish({})
            return self._report(SweepResult(leader=False, started=started, finished=self._monotonic()))
        tally = Tally()
        try:
            await self._steps(now, tally)
        except NotLeader:
            tally.interrupted = True
            log.warning("janitor sweep cut short: leadership lapsed; the next leader carries on")
        return self._report(
            SweepResult(
                leader=True,
                deleted_secrets=tally.deleted_secrets,
                expired=tally.expired,
                failed=tally.failed,
                deleted_service_accounts=tally.deleted_service_accounts,
                repaired=tally.repaired,
                retention_deleted=tally.retention_deleted,
                interrupted=tally.interrupted,
                started=started,
                finished=self._monotonic(),
            )
        )

    async def _steps(self, now: datetime, tally: Tally) -> None:
        act, store, revocation = self._act, self._store, self._revocation
        await repair_stale(store, revocation, act, now, tally, after=self._repair_after)
        await expire_due(store, revocation, act, now, tally, batch_size=self._batch)
        await self._retirement.retire(act, now, tally)
        await self._retention.apply(act, now, tally)
        await self._gauge.count(act, now)

    def _report(self, result: SweepResult) -> SweepResult:
        if result.leader:
            metrics.janitor_run("failure" if result.failed else "success")
        if self._on_sweep is not None:
            try:
                self._on_sweep(result)
            except Exception:
                log.exception("janitor on_sweep hook failed")
        return result

    # -- start-up repair -------------------------------------------------------------------------------------
    async def repair_pending(self, older_than: datetime) -> int:
        """Resolve pending issuances begun at or before `older_than` (any replica, unguarded; idempotent)."""
        return await repair_pending(self._store, self._revocation, older_than)
