"""The audit trail's background work (a janitor-leader job beside the janitor's steps): streaming to the sinks and signing checkpoints, on the janitor leader.

Why the leader: one replica delivers, so sinks see one stream in store order rather than one per replica,
and the janitor's Lease already says which replica that is (leader.py); a handover costs nothing but
a resend from the cursor. Each round runs inside `elector.leading()`, so a replica whose leadership lapses
stops mid-batch (its unacknowledged events are sent again by the next leader). Without a janitor (a single
replica), this replica delivers.

Every replica, leading or not, reports each sink's lag as the store sees it, so the lag alert fires even
while no replica leads (max by sink over replicas is the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence

from broker import metrics
from broker.audit.checkpoints import Checkpointer
from broker.audit.sinks import Delivery, FailureKind, SinkError
from broker.domain.errors import BrokerError

from .leader import LeaseElector, NotLeader

log = logging.getLogger(__name__)

_BACKOFF_INITIAL = 0.5
_BACKOFF_MAX = 60.0


class AuditStreaming:
    def __init__(
        self,
        deliveries: Sequence[Delivery],
        checkpointer: Checkpointer | None,
        elector: LeaseElector | None,
        *,
        poll_interval: float,
        checkpoint_interval: float,
        backoff: Callable[[int], float] | None = None,
    ) -> None:
        self.deliveries = tuple(deliveries)
        self._checkpointer = checkpointer
        self._elector = elector
        self._poll = poll_interval
        self._checkpoint_interval = checkpoint_interval
        self._backoff = backoff or _backoff

    def _leading(self) -> bool:
        return self._elector is None or self._elector.still_leader()

    @contextlib.asynccontextmanager
    async def _as_leader(self) -> AsyncIterator[None]:
        if self._elector is None:
            yield
            return
        async with self._elector.leading():
            yield

    async def run(self) -> None:
        """Until cancelled: one task per sink, the checkpoints, and the lag reports."""
        metrics.declare_sinks(d.name for d in self.deliveries)
        loops = [self._deliver(d) for d in self.deliveries] + [self._report_lag()]
        if self._checkpointer is not None:
            loops.append(self._checkpoints(self._checkpointer))
        try:
            async with asyncio.TaskGroup() as group:
                for loop in loops:
                    group.create_task(loop)
        finally:
            for delivery in self.deliveries:
                with contextlib.suppress(Exception):
                    await delivery.sink.close()

    async def _deliver(self, delivery: Delivery) -> None:
        failures = 0
        while True:
            if not self._leading():
                delivery.forget()
                await asyncio.sleep(self._poll)
                continue
            try:
                async with self._as_leader():
                    more = await delivery.step()
                failures = 0
                if not more:
                    await asyncio.sleep(self._poll)
                continue
            except NotLeader:
                await delivery.recover()
                continue
            except SinkError as err:
                kind, detail = err.kind, err.detail
            except BrokerError as err:
                kind, detail = FailureKind.STORE, err.reason or err.detail
            failures += 1
            metrics.sink_failure(delivery.name, kind.value)
            log.warning(
                "audit sink delivery failed; sending again from its cursor",
                extra={"sink": delivery.name, "kind": kind.value, "error": detail, "attempt": failures},
            )
            await delivery.recover()
            await asyncio.sleep(self._backoff(failures))

    async def _report_lag(self) -> None:
        while True:
            for delivery in self.deliveries:
                try:
                    lag = await delivery.lag()
                except BrokerError:
                    continue  # the store is down: the delivery loop reports it
                metrics.set_sink_lag(delivery.name, lag.events, lag.seconds)
            await asyncio.sleep(self._poll)

    async def _checkpoints(self, checkpointer: Checkpointer) -> None:
        while True:
            if self._leading():
                try:
                    async with self._as_leader():
                        await checkpointer.checkpoint_once()
                except NotLeader:
                    pass
                except BrokerError as err:
                    log.warning("audit checkpoint failed", extra={"error": err.reason or err.detail})
            await asyncio.sleep(self._checkpoint_interval)


def _backoff(failures: int) -> float:
    """Seconds before the next round after `failures` failed ones in a row: 0.5 s doubling to a minute,
    plus up to 0.5 s of jitter so replicas and sinks do not retry in lockstep."""
    delay: float = min(_BACKOFF_MAX, _BACKOFF_INITIAL * 2.0 ** min(failures - 1, 16))
    return delay + random.uniform(0, _BACKOFF_INITIAL)  # noqa: S311 - jitter
