"""The audit trail's background work: streaming to the sinks and signing checkpoints, on the janitor leader.

Why the leader: one replica delivers, so sinks see one stream in store order rather than one per replica,
and the janitor's Lease already says which replica that is (broker/leader.py); a handover costs nothing but
a resend from the cursor. Each round runs inside `elector.leading()`, so a replica whose leadership lapses
stops mid-batch (its unacknowledged events are sent again by the next leader). Without a janitor (a single
replica), this replica delivers.

Every replica, leading or not, reports each sink's lag as the store sees it, so the lag alert fires even
while no replica leads (max by sink over replicas is the truth).
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import random
from collections.abc import AsyncIterator, Callable, Sequence

from broker import __version__, metrics
from broker.audit import AuditSettings, AuditStore, SqlAuditStore, TeeStore
from broker.audit.checkpoints import Checkpointer, load_private_key
from broker.audit.sinks import Delivery, FailureKind, SinkError, make_sink
from broker.audit.sinks.settings import FileSinkSettings, WebhookSinkSettings
from broker.audit.sinks.webhook import read_token
from broker.errors import BrokerError
from broker.leader import LeaseElector, NotLeader
from broker.tls_client import client_ssl_context

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


def build_streaming(
    store: AuditStore, settings: AuditSettings, elector: LeaseElector | None
) -> AuditStreaming | None:
    """The configured sinks and checkpoint signer over `store`; None when neither is configured.

    Raises ValueError when a file they need (CA bundle, client certificate, token, signing key) is unusable."""
    if not settings.sinks and settings.checkpoint_key_file is None:
        return None
    sql = store.inner if isinstance(store, TeeStore) else store
    if not isinstance(sql, SqlAuditStore):
        raise ValueError("audit sinks and checkpoints need the SQL audit store")
    deliveries = [
        Delivery(
            sql,
            make_sink(
                sink,
                product_version=__version__,
                on_retry=functools.partial(_count_retry, sink.name),
            ),
            batch_size=sink.batch_size,
            start_at=sink.start_at,
            on_delivered=functools.partial(metrics.sink_delivered, sink.name),
        )
        for sink in settings.sinks
    ]
    checkpointer = None
    if settings.checkpoint_key_file is not None:
        checkpointer = Checkpointer(sql, load_private_key(settings.checkpoint_key_file))
    return AuditStreaming(
        deliveries,
        checkpointer,
        elector,
        poll_interval=settings.sink_poll_interval_seconds,
        checkpoint_interval=settings.checkpoint_interval_seconds,
    )


def _count_retry(sink: str, kind: FailureKind) -> None:
    metrics.sink_failure(sink, kind.value)


def stream_file_problems(settings: AuditSettings) -> list[tuple[str, str]]:
    """(key path, problem) for each file the sinks and the checkpoint signer need and cannot use: what
    `config check` and `serve` report before anything starts."""
    problems: list[tuple[str, str]] = []
    for i, sink in enumerate(settings.sinks):
        key = f"audit.sinks[{i}]"
        if isinstance(sink, FileSinkSettings):
            if not sink.path.parent.is_dir():
                problems.append((f"{key}.path", f"{sink.path}: directory {sink.path.parent} does not exist"))
            continue
        try:
            if isinstance(sink, WebhookSinkSettings) or sink.tls:
                client_ssl_context(cafile=sink.ca_file, certfile=sink.client_cert, keyfile=sink.client_key)
            if isinstance(sink, WebhookSinkSettings) and sink.bearer_token_file is not None:
                read_token(sink.bearer_token_file)
        except OSError as err:
            problems.append((key, f"{err.filename}: {err.strerror or err}"))
        except ValueError as err:
            problems.append((key, str(err)))
    if settings.checkpoint_key_file is not None:
        try:
            load_private_key(settings.checkpoint_key_file)
        except OSError as err:
            problems.append(("audit.checkpoint_key_file", f"{err.filename}: {err.strerror or err}"))
        except ValueError as err:
            problems.append(("audit.checkpoint_key_file", str(err)))
    return problems
