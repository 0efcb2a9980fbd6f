"""Against real receivers, killed mid-stream (SIGKILL) and started again: rsyslog from Debian over TCP and over
TLS, and an HTTPS webhook receiver. Events are written before, during and after the outage; every one of them
must arrive exactly as stored, first arrivals in store order (repeats are allowed: at least once)."""

from __future__ import annotations

import asyncio
import contextlib
import json
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from audit_support import T0, pending
from prometheus_client import REGISTRY
from sinks_support import (
    Certs,
    Receiver,
    caught_up,
    first_occurrences,
    line_count,
    ocsf_errors,
    openssl_certs,
    parse_syslog_line,
    rsyslog_receiver,
    stored_events,
    streaming,
    until,
    webhook_receiver,
)

from broker import metrics
from broker.app.stores import make_sql_store
from broker.app.streaming import sink_target
from broker.audit import SqlAuditStore
from broker.audit.sinks import FailureKind, SinkError, SyslogSink, SyslogTarget, WebhookSink, WebhookTarget
from broker.audit.sinks.formats import CloudEventsFormat, OcsfFormat
from broker.settings import AuditSettings
from broker.settings.sinks import SyslogSinkSettings, WebhookSinkSettings

CE = CloudEventsFormat("/kube-token-broker")


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[SqlAuditStore]:
    # the delivery logic runs on both backends in test_sink_delivery; here the receivers are the subject
    async with make_sql_store(AuditSettings(sqlite_path=tmp_path / "audit.sqlite3")) as s:
        yield s


@contextlib.asynccontextmanager
async def producing(store: SqlAuditStore, batch: int = 5, pause: float = 0.02) -> AsyncIterator[list[int]]:
    """Writes events until the block ends (at most 4000): the stream never stands still during a test."""
    written = [0]

    async def produce() -> None:
        while written[0] < 4000:
            for _ in range(batch):
                await store.record_denial(
                    pending(
                        event="denied", at=T0 + timedelta(milliseconds=written[0]), reason=f"n{written[0]}"
                    )
                )
                written[0] += 1
            await asyncio.sleep(pause)

    task = asyncio.create_task(produce())
    try:
        yield written
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


def failures(sink: str, kind: str) -> float:
    value = REGISTRY.get_sample_value("token_broker_audit_sink_failures_total", {"sink": sink, "kind": kind})
    return value or 0.0


async def outage(store: SqlAuditStore, receiver: Receiver, out: Path, delivery: Any, sink: str) -> None:
    """Kill the receiver once part of the stream arrived, keep writing, start it again, let it catch up."""
    async with producing(store) as written:
        await until(lambda: line_count(out) >= 3, what="the first batches")
        before = sum(failures(sink, k.value) for k in FailureKind)
        receiver.kill()
        at_kill = written[0]
        await until(lambda: written[0] >= at_kill + 50, what="events written during the outage")
        await until(lambda: sum(failures(sink, k.value) for k in FailureKind) > before, what="a failure")
        lag = await delivery.lag()
        assert lag.events > 0
        await receiver.start()
        await until(lambda: written[0] >= at_kill + 150, what="events after the restart")
    await until(lambda: caught_up(store, delivery), timeout=120, what="the sink catching up")
    assert (await delivery.lag()).events == 0


async def check_arrivals(store: SqlAuditStore, arrived: list[dict[str, Any]]) -> None:
    stored = {e.seq: e.as_dict() for e in await stored_events(store)}
    seqs = [int(event["seq"]) for event in arrived]
    assert first_occurrences(seqs) == sorted(stored), "every event, first arrivals in store order"
    for event in arrived:
        assert event == stored[int(event["seq"])], "exactly as stored"


# -- rsyslog ---------------------------------------------------------------------------------------------------


def syslog_settings(receiver: Receiver, certs: Certs | None, **kw: Any) -> SyslogTarget:
    """Validated as the config is, then turned into the sink's target as the app turns it."""
    settings = SyslogSinkSettings(
        kind="syslog",
        name=kw.pop("name", "rsyslog"),
        address=f"127.0.0.1:{receiver.port}",
        tls=certs is not None,
        ca_file=certs.ca if certs else None,
        settle_seconds=kw.pop("settle_seconds", 1.0),
        hostname="broker-1",
        **kw,
    )
    return sink_target(settings)


@pytest.mark.parametrize("tls", [False, True], ids=["tcp", "tls"])
async def test_rsyslog_killed_mid_stream_loses_nothing(
    store: SqlAuditStore, tmp_path: Path, tls: bool
) -> None:
    certs = openssl_certs(tmp_path / "pki") if tls else None
    out = tmp_path / "rsyslog-out.log"
    receiver = rsyslog_receiver(tmp_path / "rsyslog", out, certs)
    await receiver.start()
    name = f"rsyslog-{'tls' if tls else 'tcp'}"
    sink = SyslogSink(syslog_settings(receiver, certs, name=name), CE)
    try:
        async with streaming(store, sink, batch_size=25) as delivery:
            await outage(store, receiver, out, delivery, name)
    finally:
        receiver.kill()
    arrived = []
    for line in out.read_text().splitlines():
        header, message = parse_syslog_line(line)
        # <authpriv.severity>1 TIMESTAMP HOSTNAME APP-NAME PROCID MSGID -
        pri_version, timestamp, host, app, _pid, msgid, sd = header.split(" ")[:7]
        # authpriv (10) * 8 + notice (5), RFC 5424 version 1
        assert (pri_version, host, app, msgid, sd) == ("<85>1", "broker-1", "token-broker", "denied", "-")
        assert timestamp == message["data"]["time"]
        assert message["type"] == "io.kube-token-broker.audit.denied.v1"
        arrived.append(message["data"])
    await check_arrivals(store, arrived)


async def test_rsyslog_receives_ocsf(store: SqlAuditStore, tmp_path: Path) -> None:
    out = tmp_path / "ocsf.log"
    receiver = rsyslog_receiver(tmp_path / "rsyslog", out)
    await receiver.start()
    for i in range(5):
        await store.record_denial(pending(event="denied", reason=f"ocsf {i}", status=403))
    try:
        async with streaming(store, SyslogSink(syslog_settings(receiver, None), OcsfFormat("t"))) as delivery:
            await until(lambda: caught_up(store, delivery), what="delivery")
    finally:
        receiver.kill()
    documents = [parse_syslog_line(line)[1] for line in out.read_text().splitlines()]
    assert [d["metadata"]["sequence"] for d in documents] == [1, 2, 3, 4, 5]
    # what rsyslog wrote is valid OCSF, as emitted
    assert [ocsf_errors(d) for d in documents] == [[]] * 5


async def test_syslog_tls_refuses_an_unknown_certificate(store: SqlAuditStore, tmp_path: Path) -> None:
    certs = openssl_certs(tmp_path / "pki")
    other = openssl_certs(tmp_path / "other", name="other")
    out = tmp_path / "never.log"
    receiver = rsyslog_receiver(tmp_path / "rsyslog", out, certs)
    await receiver.start()
    await store.record_denial(pending(event="denied"))
    sink = SyslogSink(syslog_settings(receiver, Certs(other.ca, certs.cert, certs.key)), CE)
    try:
        with pytest.raises(SinkError) as failed:
            await sink.send(await stored_events(store))
        assert failed.value.kind is FailureKind.TLS
    finally:
        await sink.close()
        receiver.kill()


# -- webhook -------------------------------------------------------------------------------------------------------


def webhook_settings(receiver: Receiver, certs: Certs, tmp_path: Path, **kw: Any) -> WebhookTarget:
    token = tmp_path / "hook-token"
    token.write_text("s3cret-hook-token\n")
    settings = WebhookSinkSettings(
        kind="webhook",
        name=kw.pop("name", "hook"),
        url=f"https://127.0.0.1:{receiver.port}/events",
        ca_file=certs.ca,
        bearer_token_file=token,
        max_attempts=kw.pop("max_attempts", 2),
        backoff_initial_seconds=0.05,
        backoff_max_seconds=0.2,
        timeout_seconds=5,
        **kw,
    )
    return sink_target(settings)


def webhook_bodies(out: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in out.read_text().splitlines()]


async def test_webhook_receiver_killed_mid_stream_loses_nothing(store: SqlAuditStore, tmp_path: Path) -> None:
    certs = openssl_certs(tmp_path / "pki")
    out = tmp_path / "hook.jsonl"
    receiver = webhook_receiver(tmp_path, out, certs)
    await receiver.start()
    sink = WebhookSink(webhook_settings(receiver, certs, tmp_path, name="hook-kill"), CE)
    try:
        async with streaming(store, sink, batch_size=20) as delivery:
            await outage(store, receiver, out, delivery, "hook-kill")
    finally:
        receiver.kill()
    arrived = []
    for post in webhook_bodies(out):
        assert post["content_type"] == "application/cloudevents-batch+json"
        assert post["authorization"] == "Bearer s3cret-hook-token"
        arrived += [event["data"] for event in json.loads(post["body"])]
    await check_arrivals(store, arrived)


async def test_webhook_retries_with_backoff_and_counts_each_failure(
    store: SqlAuditStore, tmp_path: Path
) -> None:
    certs = openssl_certs(tmp_path / "pki")
    out = tmp_path / "hook.jsonl"
    receiver = webhook_receiver(tmp_path, out, certs, fail_first=3)
    await receiver.start()
    for i in range(4):
        await store.record_denial(pending(event="denied", reason=f"retry {i}"))
    before = failures("hook-retry", "server")
    settings = webhook_settings(receiver, certs, tmp_path, name="hook-retry", max_attempts=5)
    # counted as the broker counts them (broker.app.streaming wires on_retry to the failure counter)
    sink = WebhookSink(
        settings, OcsfFormat("t"), on_retry=lambda kind: metrics.sink_failure("hook-retry", kind.value)
    )
    try:
        async with streaming(store, sink) as delivery:
            await until(lambda: caught_up(store, delivery), what="delivery after the 503s")
    finally:
        receiver.kill()
    # three 503s retried inside one send (tenacity), then one POST with all four events
    assert failures("hook-retry", "server") - before == 3
    [post] = webhook_bodies(out)
    documents = json.loads(post["body"])
    assert [e["metadata"]["sequence"] for e in documents] == [1, 2, 3, 4]
    assert [ocsf_errors(d) for d in documents] == [[]] * 4


async def test_webhook_tls_is_verified(store: SqlAuditStore, tmp_path: Path) -> None:
    certs = openssl_certs(tmp_path / "pki")
    other = openssl_certs(tmp_path / "other", name="other")
    receiver = webhook_receiver(tmp_path, tmp_path / "none.jsonl", certs)
    await receiver.start()
    await store.record_denial(pending(event="denied"))
    sink = WebhookSink(
        webhook_settings(receiver, Certs(other.ca, certs.cert, certs.key), tmp_path, max_attempts=1), CE
    )
    try:
        with pytest.raises(SinkError) as failed:
            await sink.send(await stored_events(store))
        assert failed.value.kind is FailureKind.TLS
    finally:
        await sink.close()
        receiver.kill()
