"""Real receivers for the sink tests: rsyslog from Debian (TCP and TLS) and an HTTPS webhook receiver, each its
own process a test can SIGKILL mid-stream and start again on the same port; certificates made with openssl."""

from __future__ import annotations

import asyncio
import contextlib
import functools
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import jsonschema
from backends import unavailable
from ocsf_json_schema import OcsfJsonSchemaEmbedded, get_ocsf_schema

from broker.audit import SqlAuditStore
from broker.audit.chain import ChainedEvent, read_after, read_link
from broker.audit.sinks import Delivery, Sink
from broker.audit.sinks.formats.ocsf import OCSF_VERSION
from broker.background.streaming import AuditStreaming

HERE = Path(__file__).parent


@functools.cache
def ocsf_validator() -> jsonschema.Draft202012Validator:
    """The published OCSF schema's Authentication class (ocsf-json-schema's bundled export), as a validator."""
    schema = OcsfJsonSchemaEmbedded(get_ocsf_schema(version=OCSF_VERSION)).get_class_schema(
        class_name="authentication", profiles=[]
    )
    return jsonschema.Draft202012Validator(schema)


def ocsf_errors(document: dict[str, Any]) -> list[str]:
    return [f"{list(e.absolute_path)}: {e.message}" for e in ocsf_validator().iter_errors(document)]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass(frozen=True)
class Certs:
    ca: Path
    cert: Path
    key: Path


def openssl_certs(workdir: Path, name: str = "receiver") -> Certs:
    """A CA (openssl req -x509) and a server certificate for 127.0.0.1 / localhost signed by it."""
    workdir.mkdir(parents=True, exist_ok=True)
    ca, ca_key = workdir / f"{name}-ca.pem", workdir / f"{name}-ca.key"
    cert, key, csr = workdir / f"{name}.pem", workdir / f"{name}.key", workdir / f"{name}.csr"
    ext = workdir / f"{name}.ext"
    ext.write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    ec = ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"]
    sign = ["-CA", ca, "-CAkey", ca_key, "-CAcreateserial", "-days", "1", "-extfile", ext]
    for command in (
        [
            "openssl",
            "req",
            "-x509",
            *ec,
            "-keyout",
            ca_key,
            "-out",
            ca,
            "-subj",
            "/CN=sink-test-ca",
            "-days",
            "1",
        ],
        ["openssl", "req", *ec, "-keyout", key, "-out", csr, "-subj", "/CN=127.0.0.1"],
        ["openssl", "x509", "-req", "-in", csr, "-out", cert, *sign],
    ):
        subprocess.run([str(c) for c in command], check=True, capture_output=True, timeout=60)
    return Certs(ca, cert, key)


async def wait_listening(port: int, proc: subprocess.Popen[bytes], timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while True:
            if proc.poll() is not None:
                raise RuntimeError(
                    f"receiver exited with {proc.returncode}: {proc.stderr and proc.stderr.read()}"
                )
            with contextlib.suppress(OSError):
                _, writer = await asyncio.open_connection("127.0.0.1", port)
                writer.close()
                return
            await asyncio.sleep(0.05)


class Receiver:
    """A receiver process on a fixed port: start(), kill() (SIGKILL, mid-stream), start() again."""

    def __init__(self, argv: Callable[[], list[str]], port: int, log: Path) -> None:
        self._argv = argv
        self.port = port
        self._log = log
        self.proc: subprocess.Popen[bytes] | None = None

    async def start(self) -> None:
        with self._log.open("ab") as log:
            self.proc = subprocess.Popen(self._argv(), stdout=log, stderr=subprocess.STDOUT)
        await wait_listening(self.port, self.proc)

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGKILL)
            self.proc.wait(timeout=10)
        self.proc = None


# -- rsyslog ------------------------------------------------------------------------------------------------------


def rsyslogd() -> str:
    found = shutil.which("rsyslogd") or (
        "/usr/sbin/rsyslogd" if Path("/usr/sbin/rsyslogd").exists() else None
    )
    if found is None or not list(Path("/usr/lib").glob("*/rsyslog/lmnsd_ossl.so")):
        unavailable("rsyslog is not installed (tools/rsyslog.sh: apt-get install rsyslog rsyslog-openssl)")
        raise AssertionError("unreachable")
    return found


def rsyslog_config(workdir: Path, port: int, out: Path, certs: Certs | None) -> Path:
    """imtcp on 127.0.0.1:port (TLS through the ossl driver when certs are given), every message as received
    (%rawmsg%) to `out`, synchronously: Direct queues, so what rsyslog acknowledged at TCP level and still held
    in memory is exactly what a SIGKILL loses."""
    tls_global = tls_module = ""
    if certs is not None:
        tls_global = (
            f'DefaultNetstreamDriver="ossl" DefaultNetstreamDriverCAFile="{certs.ca}" '
            f'DefaultNetstreamDriverCertFile="{certs.cert}" DefaultNetstreamDriverKeyFile="{certs.key}"'
        )
        tls_module = 'StreamDriver.Name="ossl" StreamDriver.Mode="1" StreamDriver.AuthMode="anon"'
    spool = workdir / "spool"
    spool.mkdir(parents=True, exist_ok=True)
    conf = workdir / "rsyslog.conf"
    conf.write_text(
        f"""global(workDirectory="{spool}" maxMessageSize="64k" {tls_global})
main_queue(queue.type="Direct")
module(load="imtcp" {tls_module})
input(type="imtcp" address="127.0.0.1" port="{port}" ruleset="sink")
template(name="raw" type="string" string="%rawmsg%\\n")
ruleset(name="sink" queue.type="Direct") {{
  action(type="omfile" file="{out}" template="raw")
}}
"""
    )
    return conf


def rsyslog_receiver(workdir: Path, out: Path, certs: Certs | None = None) -> Receiver:
    binary = rsyslogd()
    port = free_port()
    conf = rsyslog_config(workdir, port, out, certs)
    pidfile = workdir / "rsyslogd.pid"

    def argv() -> list[str]:
        pidfile.unlink(missing_ok=True)
        return [binary, "-n", "-f", str(conf), "-i", str(pidfile)]

    return Receiver(argv, port, workdir / "rsyslogd.log")


def parse_syslog_line(line: str) -> tuple[str, dict[str, Any]]:
    """(the RFC 5424 header up to MSG, the JSON MSG)"""
    brace = line.index("{")
    return line[:brace], json.loads(line[brace:])


# -- webhook --------------------------------------------------------------------------------------------------------


def webhook_receiver(workdir: Path, out: Path, certs: Certs, *, fail_first: int = 0) -> Receiver:
    port = free_port()

    def argv() -> list[str]:
        return [
            sys.executable,
            str(HERE / "webhook_receiver.py"),
            str(port),
            str(certs.cert),
            str(certs.key),
            str(out),
            str(fail_first),
        ]

    return Receiver(argv, port, workdir / "webhook.log")


# -- the stream ---------------------------------------------------------------------------------------------------


async def stored_events(store: SqlAuditStore) -> list[ChainedEvent]:
    return await read_after(store.backend, store.codec, 0, 100_000)


def first_occurrences(seqs: Sequence[int]) -> list[int]:
    seen: set[int] = set()
    order = []
    for seq in seqs:
        if seq not in seen:
            seen.add(seq)
            order.append(seq)
    return order


@contextlib.asynccontextmanager
async def streaming(store: SqlAuditStore, sink: Sink, *, batch_size: int = 50) -> AsyncIterator[Delivery]:
    """The broker's delivery loop for one sink (no janitor: this replica delivers), fast polling and backoff."""
    delivery = Delivery(store, sink, batch_size=batch_size)
    loop = AuditStreaming(
        [delivery], None, None, poll_interval=0.05, checkpoint_interval=60, backoff=lambda n: 0.1
    )
    task = asyncio.create_task(loop.run())
    try:
        yield delivery
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


async def until(predicate: Callable[[], Any], timeout: float = 60, what: str = "condition") -> None:
    """Poll an (async) predicate; a bounded wait, never a timing assertion."""
    deadline = time.monotonic() + timeout
    while True:
        result = predicate()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.05)


async def caught_up(store: SqlAuditStore, delivery: Delivery) -> bool:
    head = await read_link(store.backend, "head")
    return delivery.cursor == head.seq


def line_count(path: Path) -> int:
    return len(path.read_text().splitlines()) if path.exists() else 0


def kill_group(pid: int) -> None:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
