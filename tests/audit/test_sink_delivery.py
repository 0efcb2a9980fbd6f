"""At-least-once delivery from the cursor, on both backends, through the file sink (and a sink that fails on
demand): nothing lost across failures, restarts and leader changes, store order kept, the cursor persisted."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator, Sequence
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import T0, issue, pending
from prometheus_client import REGISTRY
from sinks_support import caught_up, first_occurrences, ocsf_errors, stored_events, streaming, until

from broker import metrics
from broker.audit import SqlAuditStore
from broker.audit.chain import ChainedEvent
from broker.audit.sinks import Delivery, FailureKind, FileSink, SinkError
from broker.audit.sinks.formats import CloudEventsFormat, OcsfFormat
from broker.background.leader import NotLeader
from broker.background.streaming import AuditStreaming
from broker.settings.sinks import FileSinkSettings

CE = CloudEventsFormat("/kube-token-broker")


def file_sink(path: Path, opened: list[FileSink] | None = None) -> FileSink:
    sink = FileSink("file", path, CE, max_bytes=1 << 30, backups=3)
    if opened is not None:
        opened.append(sink)
    return sink


@pytest.fixture
async def opened() -> AsyncIterator[list[FileSink]]:
    """Sinks a test drives by hand (the delivery loop closes its own): closed at the end."""
    sinks: list[FileSink] = []
    yield sinks
    for sink in sinks:
        await sink.close()


def received(*paths: Path) -> list[dict[str, object]]:
    lines: list[dict[str, object]] = []
    for path in paths:
        if path.exists():
            lines += [json.loads(line) for line in path.read_text().splitlines()]
    return lines


async def write_events(store: SqlAuditStore, count: int, offset: int = 0) -> None:
    for i in range(count):
        await store.record_denial(
            pending(event="denied", at=T0 + timedelta(seconds=offset + i), reason=f"r{i}")
        )


class Flaky:
    """A file sink that refuses the next `failures` sends (a receiver that is down)."""

    def __init__(self, inner: FileSink, failures: int = 0) -> None:
        self.inner = inner
        self.name = inner.name
        self.failures = failures
        self.resets = 0

    async def send(self, events: Sequence[ChainedEvent]) -> int:
        if self.failures > 0:
            self.failures -= 1
            raise SinkError(FailureKind.CONNECT, "receiver down")
        return await self.inner.send(events)

    async def acknowledged(self) -> int:
        return await self.inner.acknowledged()

    async def reset(self) -> None:
        self.resets += 1
        await self.inner.reset()

    async def close(self) -> None:
        await self.inner.close()


async def test_every_event_is_delivered_once_in_store_order(store: SqlAuditStore, tmp_path: Path) -> None:
    await write_events(store, 120)
    out = tmp_path / "audit.jsonl"
    async with streaming(store, file_sink(out), batch_size=50) as delivery:
        await until(lambda: caught_up(store, delivery), what="delivery")
        # new events keep flowing after it caught up
        await issue(store)
        await until(lambda: caught_up(store, delivery), what="the next event")
    lines = received(out)
    stored = await stored_events(store)
    assert [int(line["sequence"]) for line in lines] == [e.seq for e in stored] == list(range(1, 122))
    assert [line["data"] for line in lines] == [e.as_dict() for e in stored]
    assert (out.stat().st_mode & 0o777) == 0o600


async def test_a_failing_sink_loses_nothing_and_keeps_order(store: SqlAuditStore, tmp_path: Path) -> None:
    await write_events(store, 40)
    flaky = Flaky(file_sink(tmp_path / "out.jsonl"), failures=5)
    async with streaming(store, flaky, batch_size=7) as delivery:
        await until(lambda: caught_up(store, delivery), what="delivery after the failures")
    assert flaky.resets >= 5
    seqs = [int(line["sequence"]) for line in received(tmp_path / "out.jsonl")]
    assert seqs == list(range(1, 41))


async def test_the_cursor_survives_a_restart(store: SqlAuditStore, tmp_path: Path) -> None:
    out = tmp_path / "out.jsonl"
    await write_events(store, 30)
    async with streaming(store, file_sink(out)) as delivery:
        await until(lambda: caught_up(store, delivery))
    # the broker is down while 20 more events are written; the next run starts from the stored cursor
    await write_events(store, 20, offset=100)
    rows = await store.backend.fetch("SELECT seq FROM sink_cursors WHERE sink = 'file'")
    assert [int(r["seq"]) for r in rows] == [30]
    async with streaming(store, file_sink(out)) as delivery:
        await until(lambda: caught_up(store, delivery))
    assert [int(line["sequence"]) for line in received(out)] == list(range(1, 51))


async def test_a_crash_before_the_cursor_moved_repeats_only_that_batch(
    store: SqlAuditStore, tmp_path: Path
) -> None:
    out = tmp_path / "out.jsonl"
    await write_events(store, 10)
    sink = file_sink(out)
    # the batch reached the file, but the process died before it recorded the cursor
    [event, *_] = await stored_events(store)
    await sink.send(await stored_events(store))
    await sink.close()
    async with streaming(store, file_sink(out)) as delivery:
        await until(lambda: caught_up(store, delivery))
    seqs = [int(line["sequence"]) for line in received(out)]
    assert seqs == list(range(1, 11)) * 2  # at least once: the repeat is whole and in order
    assert first_occurrences(seqs) == list(range(1, 11)) and event.seq == 1


async def test_two_deliverers_never_move_the_cursor_back(
    store: SqlAuditStore, tmp_path: Path, opened: list[FileSink]
) -> None:
    """During a leader handover two replicas may both deliver for a moment: the cursor only moves forward."""
    await write_events(store, 20)
    ahead = Delivery(store, file_sink(tmp_path / "a.jsonl", opened), batch_size=20)
    behind = Delivery(store, file_sink(tmp_path / "b.jsonl", opened), batch_size=5)
    await behind.step()  # read the cursor (0) and delivered 5
    await ahead.step()  # delivered all 20
    await behind.step()  # delivers 6..10: the cursor must stay at 20
    rows = await store.backend.fetch("SELECT seq FROM sink_cursors WHERE sink = 'file'")
    assert [int(r["seq"]) for r in rows] == [20]
    lag = await behind.lag()
    assert (lag.events, lag.seconds) == (0, 0.0)


async def test_lag_counts_what_the_sink_has_not_acknowledged(
    store: SqlAuditStore, tmp_path: Path, opened: list[FileSink]
) -> None:
    clock_now = T0 + timedelta(minutes=10)
    delivery = Delivery(store, file_sink(tmp_path / "o.jsonl", opened), batch_size=4, clock=lambda: clock_now)
    await write_events(store, 10)
    lag = await delivery.lag()
    assert lag.events == 10 and lag.seconds == pytest.approx(600)
    await delivery.step()
    lag = await delivery.lag()
    assert lag.events == 6 and lag.seconds == pytest.approx(596)


async def test_a_new_sink_can_start_at_the_newest_event(
    store: SqlAuditStore, tmp_path: Path, opened: list[FileSink]
) -> None:
    await write_events(store, 5)
    delivery = Delivery(store, file_sink(tmp_path / "n.jsonl", opened), batch_size=10, start_at="newest")
    await delivery.step()
    await write_events(store, 2, offset=50)
    await delivery.step()
    assert [int(line["sequence"]) for line in received(tmp_path / "n.jsonl")] == [6, 7]


async def test_the_file_rotates_by_size(store: SqlAuditStore, tmp_path: Path) -> None:
    out = tmp_path / "rot.jsonl"
    await write_events(store, 30)
    sink = FileSink("rot", out, OcsfFormat("test"), max_bytes=8192, backups=2)
    async with streaming(store, sink, batch_size=7) as delivery:
        await until(lambda: caught_up(store, delivery))
    backups = [out.with_name("rot.jsonl.1"), out.with_name("rot.jsonl.2")]
    assert all(p.exists() for p in backups) and not out.with_name("rot.jsonl.3").exists()
    for path in (out, *backups):
        assert path.stat().st_size <= 8192
    # the newest events, oldest file first, each line whole
    documents = received(*reversed(backups), out)
    seqs = [int(line["metadata"]["sequence"]) for line in documents]  # type: ignore[index]
    assert seqs == list(range(seqs[0], 31))
    assert all(ocsf_errors(d) == [] for d in documents)


async def test_a_torn_last_line_is_ended_before_the_batch_is_written_again(
    tmp_path: Path, store: SqlAuditStore
) -> None:
    out = tmp_path / "torn.jsonl"
    out.write_bytes(b'{"half": ')
    await write_events(store, 3)
    async with streaming(store, file_sink(out)) as delivery:
        await until(lambda: caught_up(store, delivery))
    lines = out.read_text().splitlines()
    assert lines[0] == '{"half": ' and [json.loads(line)["sequence"] for line in lines[1:]] == [
        f"{n:020d}" for n in (1, 2, 3)
    ]


def test_file_sink_settings(tmp_path: Path) -> None:
    settings = FileSinkSettings.model_validate(
        {"kind": "file", "name": "local", "path": "audit/out.jsonl"}, context={"base_dir": tmp_path}
    )
    assert settings.path == tmp_path / "audit" / "out.jsonl" and settings.format == "cloudevents"


class Lease:
    """Stands in for the janitor's LeaseElector: leadership switched by the test."""

    def __init__(self) -> None:
        self.leader = False

    def still_leader(self) -> bool:
        return self.leader

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[None]:
        if not self.leader:
            raise NotLeader
        yield


async def test_only_the_leader_delivers_and_every_replica_reports_lag(
    store: SqlAuditStore, tmp_path: Path
) -> None:
    out = tmp_path / "leader.jsonl"
    await write_events(store, 12)
    lease = Lease()
    sink = FileSink("gated", out, CE, max_bytes=1 << 30, backups=0)
    # wired as broker.app.streaming.build_streaming wires it
    delivery = Delivery(store, sink, batch_size=5, on_delivered=lambda n: metrics.sink_delivered("gated", n))
    delivered = REGISTRY.get_sample_value("token_broker_audit_sink_delivered_total", {"sink": "gated"}) or 0
    loop = AuditStreaming([delivery], None, lease, poll_interval=0.05, checkpoint_interval=60)  # type: ignore[arg-type]
    task = asyncio.create_task(loop.run())
    try:
        await until(
            lambda: REGISTRY.get_sample_value("token_broker_audit_sink_lag_events", {"sink": "gated"}) == 12
        )
        assert not out.exists()  # a replica that does not lead sends nothing
        lease.leader = True
        await until(lambda: caught_up(store, delivery), what="the new leader's delivery")
        await until(
            lambda: REGISTRY.get_sample_value("token_broker_audit_sink_lag_events", {"sink": "gated"}) == 0
        )
        after = REGISTRY.get_sample_value("token_broker_audit_sink_delivered_total", {"sink": "gated"})
        assert after == delivered + 12
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert [int(line["sequence"]) for line in received(out)] == list(range(1, 13))
