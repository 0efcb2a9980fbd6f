"""Section 4: many concurrent callers for a while — errors (there must be none), latency, broker memory.

Each caller is its own identity (CN=load-NNNN, O=bench) on its own kept-alive mTLS connection, so neither the
per-caller rate limit nor a shared connection hides anything. The broker is a fresh process, so its peak RSS
(VmHWM) belongs to this run. Callers loop without pause: this is saturation, and latency is mostly queueing
(Little's law: callers / throughput).
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

from .brokerproc import PLAIN_ROLE, BrokerOptions, start_broker
from .load import TokenClient, broker_body, close_all, run_round, summarize
from .names import NAMESPACE
from .pki import Pki
from .procs import log
from .sim import Sim


async def run(
    sim: Sim, pki: Pki, root: Path, config_text: str, *, callers: int, seconds: float, options: BrokerOptions
) -> dict[str, Any]:
    began = time.perf_counter()
    contexts = [pki.caller_ssl(f"load-{i:04d}") for i in range(callers)]
    setup_s = time.perf_counter() - began
    broker = await start_broker(root, "broker-load", config_text, options)
    body = broker_body(PLAIN_ROLE.name, NAMESPACE)
    clients = [TokenClient(broker.url + "/v1/tokens", [body], c, timeout=120.0) for c in contexts]
    processes = {"broker": broker.process.cpu, "sim": sim.process.cpu}
    try:
        idle_peak = broker.process.peak_rss_mb()
        log(f"  {callers} callers connecting (one request each, all at once)")
        connect = await run_round(clients, processes, count=callers)
        log(f"  {callers} callers for {seconds:g}s")
        steady = await run_round(clients, processes, seconds=seconds)
        peak = broker.process.peak_rss_mb()
        rss = broker.process.rss_mb()
    finally:
        await close_all(clients)
        await broker.stop()
    errors = dict(connect.errors + steady.errors)
    return {
        "callers": callers,
        "seconds": seconds,
        "identity": "one client certificate per caller; [auth.rate_limit] raised to 1e9/min",
        "caller_setup_s": setup_s,
        "connect": summarize([connect]).as_dict(),
        "steady": summarize([steady]).as_dict(),
        "errors_total": sum(errors.values()),
        "errors": errors,
        "broker_peak_rss_mb": peak,
        "broker_rss_end_mb": rss,
        "broker_peak_rss_idle_mb": idle_peak,
    }
