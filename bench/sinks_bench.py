"""`python -m bench.sinks_bench`: what each audit sink sustains, and the lag a sink outage causes.

1. throughput: N events already in a SQLite store, then one delivery loop drains them into the sink; events
   per second until the receiver has them all (the file sink: fsync per batch; the webhook: an HTTPS receiver
   process that fsyncs each POST before answering; syslog: rsyslog from Debian over TCP and TLS, writing to a
   file synchronously).
2. outage: events written at a steady rate while the receiver is SIGKILLed for a while and started again:
   the largest lag the broker reported (events, seconds), how long it took to catch up once the receiver was
   back, and how many events arrived twice (at least once).

The real receivers are the test suite's (tests/audit/sinks_support.py). Run by hand; nothing asserts a time.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path[:0] = [str(REPO / "tests"), str(REPO / "tests" / "audit")]

from sinks_support import (  # noqa: E402 - after the path above
    Receiver,
    caught_up,
    first_occurrences,
    openssl_certs,
    parse_syslog_line,
    rsyslog_receiver,
    streaming,
    webhook_receiver,
)

from broker.app.stores import make_sql_store  # noqa: E402
from broker.app.streaming import sink_target  # noqa: E402
from broker.audit import AuditRecord, SqlAuditStore  # noqa: E402
from broker.settings import AuditSettings  # noqa: E402
from broker.audit.sinks import FileSink, Sink, SyslogSink, WebhookSink  # noqa: E402
from broker.audit.sinks.formats import CloudEventsFormat, OcsfFormat  # noqa: E402
from broker.settings.sinks import SyslogSinkSettings, WebhookSinkSettings  # noqa: E402

CE = CloudEventsFormat("/kube-token-broker")


def denial(i: int) -> AuditRecord:
    return AuditRecord(
        id=str(uuid.uuid4()),
        event_id=str(uuid.uuid4()),
        time=datetime.now(UTC),
        event="denied",
        caller_user=f"ci-job-{i % 50}",
        caller_method="mtls",
        caller_groups=("ci",),
        source_address="10.0.0.7",
        user_agent="jenkins/2.440",
        role="deployer",
        cluster="prod",
        namespace="team-a",
        service_account="tb-deployer",
        audiences=("https://kubernetes.default.svc",),
        ttl_requested=900,
        reason="no grant gives role deployer in team-a",
        status=403,
        context={"job": "deploy-api", "build_url": f"https://ci.example/job/deploy-api/{i}/"},
        request_id=f"req-{i}",
    )


# -- receivers -------------------------------------------------------------------------------------------------


class Target:
    """A sink and the receiver behind it: what arrived (the seq of each event, parsed once at the end) and a
    cheap count of it while the stream runs (a byte search: parsing every poll would be the bottleneck)."""

    def __init__(
        self,
        name: str,
        make: Callable[[], Sink],
        arrived: Callable[[], list[int]],
        receiver: Receiver | None,
        out: Path,
        marker: bytes = b"\n",
    ):
        self.name = name
        self.make = make
        self.arrived = arrived
        self.receiver = receiver
        self._out = out
        self._marker = marker

    def count(self) -> int:
        return self._out.read_bytes().count(self._marker) if self._out.exists() else 0


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines() if path.exists() else []


def targets(work: Path, only: set[str]) -> list[Target]:
    found: list[Target] = []
    if "file" in only:
        out = work / "file.jsonl"
        found.append(
            Target(
                "file (CloudEvents, fsync per batch)",
                lambda out=out: FileSink("file", out, CE, max_bytes=1 << 40, backups=0),
                lambda out=out: [int(json.loads(line)["sequence"]) for line in _lines(out)],
                None,
                out,
            )
        )
        ocsf = work / "ocsf.jsonl"
        found.append(
            Target(
                "file (OCSF, fsync per batch)",
                lambda: FileSink("file-ocsf", ocsf, OcsfFormat("bench"), max_bytes=1 << 40, backups=0),
                lambda: [json.loads(line)["metadata"]["sequence"] for line in _lines(ocsf)],
                None,
                ocsf,
            )
        )
    certs = openssl_certs(work / "pki")
    if "webhook" in only:
        out = work / "webhook.jsonl"
        receiver = webhook_receiver(work, out, certs)
        settings = sink_target(
            WebhookSinkSettings(
            kind="webhook",
            name="webhook",
            url=f"https://127.0.0.1:{receiver.port}/events",
            ca_file=certs.ca,
            max_attempts=2,
            backoff_initial_seconds=0.2,
            backoff_max_seconds=1,
            )
        )

        def posted(out: Path = out) -> list[int]:
            return [int(e["sequence"]) for line in _lines(out) for e in json.loads(json.loads(line)["body"])]

        found.append(
            Target(
                "webhook (HTTPS, receiver fsyncs)",
                lambda s=settings: WebhookSink(s, CE),
                posted,
                receiver,
                out,
                b'\\"specversion\\"',
            )
        )
    for tls in (False, True):
        if ("syslog-tls" if tls else "syslog-tcp") not in only:
            continue
        label = "tls" if tls else "tcp"
        out = work / f"rsyslog-{label}.log"
        receiver = rsyslog_receiver(work / f"rsyslog-{label}", out, certs if tls else None)
        syslog = sink_target(
            SyslogSinkSettings(
            kind="syslog",
            name=f"syslog-{label}",
            address=f"127.0.0.1:{receiver.port}",
            tls=tls,
            ca_file=certs.ca if tls else None,
            settle_seconds=1.0,
            )
        )

        def received(out: Path = out) -> list[int]:
            return [int(parse_syslog_line(line)[1]["data"]["seq"]) for line in _lines(out)]

        found.append(
            Target(f"syslog {label.upper()} (rsyslog)", lambda s=syslog: SyslogSink(s, CE), received, receiver, out)
        )
    return found


async def _until(check: Callable[[], bool] | Callable[[], Awaitable[bool]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = check()
        if not isinstance(result, bool):
            result = await result
        if result:
            return
        await asyncio.sleep(0.02)
    raise TimeoutError("the sink did not catch up in time")


# -- sections -----------------------------------------------------------------------------------------------------


async def throughput(store: SqlAuditStore, target: Target, events: int, batch: int) -> dict[str, Any]:
    head = (await store.backend.fetch("SELECT seq FROM audit_chain WHERE name = 'head'"))[0]["seq"]
    started = time.perf_counter()
    async with streaming(store, target.make(), batch_size=batch):
        await _until(lambda: target.count() >= head, timeout=600)
        seconds = time.perf_counter() - started
    seqs = target.arrived()
    assert first_occurrences(seqs) == list(range(1, head + 1)), "every event, in order"
    return {
        "sink": target.name,
        "events": int(head),
        "batch": batch,
        "seconds": round(seconds, 2),
        "events_per_s": round(head / seconds),
        "duplicates": len(seqs) - head,
    }


async def outage(store: SqlAuditStore, target: Target, rate: int, down: float, batch: int) -> dict[str, Any]:
    assert target.receiver is not None
    written = 0
    stop = asyncio.Event()

    async def produce() -> None:
        nonlocal written
        while not stop.is_set():
            tick = time.monotonic()
            # through group commit, as the broker writes (the writer connection is shared with the cursor)
            await asyncio.gather(*(store.record_denial(denial(written + i)) for i in range(rate // 10)))
            written += rate // 10
            await asyncio.sleep(max(0.0, 0.1 - (time.monotonic() - tick)))

    async with streaming(store, target.make(), batch_size=batch) as delivery:
        producer = asyncio.create_task(produce())
        await asyncio.sleep(3)
        target.receiver.kill()
        worst_events, worst_seconds = 0, 0.0
        until = time.monotonic() + down
        while time.monotonic() < until:
            lag = await delivery.lag()
            worst_events, worst_seconds = max(worst_events, lag.events), max(worst_seconds, lag.seconds)
            await asyncio.sleep(0.25)
        restarted = time.monotonic()
        await target.receiver.start()
        stop.set()
        await producer
        await _until(lambda: caught_up(store, delivery), timeout=600)
        catch_up = time.monotonic() - restarted
    seqs = target.arrived()
    return {
        "sink": target.name,
        "rate_per_s": rate,
        "down_s": down,
        "max_lag_events": worst_events,
        "max_lag_s": round(worst_seconds, 1),
        "catch_up_s": round(catch_up, 1),
        "events": written,
        "duplicates": len(seqs) - len(first_occurrences(seqs)),
        "lost": len(set(range(1, max(seqs) + 1)) - set(seqs)),
    }


async def main(args: argparse.Namespace) -> dict[str, Any]:
    results: dict[str, Any] = {"throughput": [], "outage": []}
    with tempfile.TemporaryDirectory(prefix="sinks-bench-") as tmp:
        work = Path(tmp)
        only = set(args.sinks.split(","))
        for target in targets(work / "t", only):
            db = work / f"{uuid.uuid4().hex}.sqlite3"
            async with make_sql_store(AuditSettings(sqlite_path=db)) as store:
                for start in range(0, args.events, 2000):
                    await store.import_records([denial(i) for i in range(start, min(args.events, start + 2000))])
                if target.receiver:
                    await target.receiver.start()
                try:
                    row = await throughput(store, target, args.events, args.batch)
                finally:
                    if target.receiver:
                        target.receiver.kill()
            print(json.dumps(row), flush=True)
            results["throughput"].append(row)
        for target in targets(work / "o", only - {"file"}):
            db = work / f"{uuid.uuid4().hex}.sqlite3"
            async with make_sql_store(AuditSettings(sqlite_path=db)) as store:
                assert target.receiver is not None
                await target.receiver.start()
                try:
                    row = await outage(store, target, args.rate, args.down, args.batch)
                finally:
                    target.receiver.kill()
            print(json.dumps(row), flush=True)
            results["outage"].append(row)
    return results


def cli() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--events", type=int, default=20_000, help="events drained per sink")
    parser.add_argument("--batch", type=int, default=100, help="events per delivery (batch_size)")
    parser.add_argument("--rate", type=int, default=200, help="events written per second during the outage")
    parser.add_argument("--down", type=float, default=20.0, help="seconds the receiver stays down")
    parser.add_argument("--sinks", default="file,webhook,syslog-tcp,syslog-tls")
    parser.add_argument("--out", type=Path, help="write the results as JSON here too")
    args = parser.parse_args()
    results = asyncio.run(main(args))
    if args.out:
        args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    with contextlib.suppress(KeyboardInterrupt):
        cli()
