"""`python -m bench` (`make bench`): the broker's cost per token against the API server's own, kubectl and load.

Runs every section in one go, prints a table and writes bench/results.json:

1+2. TokenRequests straight to the simulator vs tokens through the broker, rounds alternating, at each
     concurrency: throughput, p50/p99, CPU per token of the broker, the simulator and the load generator;
3.   kubectl create token / token-broker issue (a process per token) / a warm client, tokens per second;
4.   many concurrent callers for a while: errors, p99, broker peak RSS;
5.   cost per token with 10 … 10,000 roles and grants, and with 100,000 service accounts in the cluster;
6.   the audit store at 1,000,000 records (bench.audit_bench), SQLite and PostgreSQL.

The simulator and the broker are separate processes (`token-broker kube-sim`, `token-broker serve`); the load
generator is this process. On shared 2-core machines absolute numbers move: read the ratios.
`--smoke` runs everything at a tiny size (the CI test does, to keep the bench working).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from . import audit, compare, growth, peer, report, stress
from .brokerproc import PLAIN_ROLE, REVOCABLE_ROLE, BrokerOptions, render_config, start_broker
from .pki import Pki
from .procs import log
from .sim import kube_sim_argv, start_sim

SECTIONS = ("compare", "peer", "load", "growth", "audit")
DEFAULT_OUT = Path(__file__).resolve().parent / "results.json"

SMOKE = {
    "rounds": 1,
    "round_seconds": 0.4,
    "warmup_seconds": 0.2,
    "concurrency": "1,4",
    "kubectl_runs": 2,
    "issue_runs": 2,
    "warm_seconds": 0.4,
    "load_callers": 20,
    "load_seconds": 1.0,
    "growth_roles": "2,20",
    "growth_namespaces": 3,
    "growth_per_namespace": 10,
    "growth_concurrency": 4,
    "growth_rounds": 1,
    "growth_seconds": 0.4,
    "audit_records": 2000,
    "audit_backend": "sqlite",
    "audit_writers": 4,
    "audit_per_writer": 5,
    "audit_queries": 10,
}


def _ints(text: str) -> list[int]:
    return [int(part) for part in text.split(",") if part.strip()]


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--out", type=Path, default=DEFAULT_OUT, help="where results.json goes")
    p.add_argument("--sections", default=",".join(SECTIONS), help=f"a subset of {','.join(SECTIONS)}")
    p.add_argument("--smoke", action="store_true", help="everything at a tiny size (CI)")
    p.add_argument("--keep", action="store_true", help="keep the work directory (logs, configs, databases)")
    g = p.add_argument_group("every broker of the run (to measure a change without editing code)")
    g.add_argument("--broker-log-level", default="INFO", help="token-broker serve --log-level")
    g.add_argument(
        "--group-commit-delay-ms",
        type=float,
        default=None,
        help="[audit] group_commit_max_delay_ms (default: the broker's)",
    )
    g = p.add_argument_group("1+2: direct vs broker")
    g.add_argument("--concurrency", default="1,50")
    g.add_argument("--rounds", type=int, default=4, help="rounds per path (they alternate)")
    g.add_argument("--round-seconds", type=float, default=4.0)
    g.add_argument("--warmup-seconds", type=float, default=1.0)
    g = p.add_argument_group("3: peers")
    g.add_argument("--kubectl-runs", type=int, default=20)
    g.add_argument("--issue-runs", type=int, default=20)
    g.add_argument("--warm-seconds", type=float, default=4.0)
    g = p.add_argument_group("4: load")
    g.add_argument("--load-callers", type=int, default=1000)
    g.add_argument("--load-seconds", type=float, default=60.0)
    g = p.add_argument_group("5: growth")
    g.add_argument("--growth-roles", default="10,1000,10000", help="roles (and as many grants) per config")
    g.add_argument("--growth-namespaces", type=int, default=1000, help="seeded namespaces")
    g.add_argument("--growth-per-namespace", type=int, default=100, help="seeded accounts per namespace")
    g.add_argument("--growth-concurrency", type=int, default=50)
    g.add_argument("--growth-rounds", type=int, default=2)
    g.add_argument("--growth-seconds", type=float, default=4.0)
    g = p.add_argument_group("6: audit store")
    g.add_argument("--audit-records", type=int, default=1_000_000)
    g.add_argument("--audit-backend", choices=("sqlite", "postgres", "both"), default="both")
    g.add_argument(
        "--audit-dsn",
        default=os.environ.get("BENCH_POSTGRES_DSN", "postgresql://postgres@127.0.0.1:5432/test"),
    )
    g.add_argument("--audit-writers", type=int, default=100)
    g.add_argument("--audit-per-writer", type=int, default=50)
    g.add_argument("--audit-queries", type=int, default=200)
    args = p.parse_args(argv)
    if args.smoke:
        for key, value in SMOKE.items():
            setattr(args, key, value)
    unknown = set(args.sections.split(",")) - set(SECTIONS)
    if unknown:
        p.error(f"unknown sections: {', '.join(sorted(unknown))}")
    return args


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    return {k: (str(v) if isinstance(v, Path) else v) for k, v in vars(args).items()}


def _machine() -> dict[str, Any]:
    return {
        "cpus": os.cpu_count(),
        "python": platform.python_version(),
        "load_average_at_start": os.getloadavg(),
        "started": datetime.now(UTC).isoformat(timespec="seconds"),
    }


def _busiest_vs_kubectl(results: dict[str, Any]) -> None:
    """Tokens/s through the broker at the highest concurrency measured, against kubectl's (for context: the
    goal compares one token after another)."""
    if "compare" not in results or "peer" not in results:
        return
    top = max(results["compare"], key=int)
    kubectl = results["peer"]["kubectl"]["tokens_per_s"]
    rate = results["compare"][top]["broker"]["tokens_per_s"]
    results["peer"]["busiest"] = {
        "concurrency": int(top),
        "tokens_per_s": rate,
        "vs_kubectl": rate / kubectl if kubectl else 0.0,
    }


async def _cluster_sections(
    args: argparse.Namespace, root: Path, sections: set[str], results: dict[str, Any]
) -> None:
    pki = Pki(root)
    options = BrokerOptions(log_level=args.broker_log_level, group_commit_delay_ms=args.group_commit_delay_ms)
    log("starting the simulator (token-broker kube-sim)")
    sim = await start_sim(root, "sim", kube_sim_argv())
    try:
        config = render_config(
            pki=pki,
            kubeconfig_path=sim.broker_kubeconfig(root / "broker.kubeconfig"),
            audit_path=root / "audit-main.sqlite3",
            roles=[PLAIN_ROLE, REVOCABLE_ROLE],
            grant_per_role=False,
        )
        if sections & {"compare", "peer"}:
            broker = await start_broker(root, "broker-main", config, options)
            try:
                if "compare" in sections:
                    log("1+2: direct vs broker")
                    results["compare"] = await compare.run(
                        sim,
                        broker,
                        pki,
                        concurrencies=_ints(args.concurrency),
                        rounds=args.rounds,
                        seconds=args.round_seconds,
                        warmup_seconds=args.warmup_seconds,
                    )
                if "peer" in sections:
                    log("3: kubectl, token-broker issue, warm client")
                    results["peer"] = await peer.run(
                        sim,
                        broker,
                        pki,
                        root,
                        kubectl_runs=args.kubectl_runs,
                        issue_runs=args.issue_runs,
                        warm_seconds=args.warm_seconds,
                    )
            finally:
                await broker.stop()
            _busiest_vs_kubectl(results)
        if "load" in sections:
            log(f"4: {args.load_callers} callers for {args.load_seconds:g}s")
            load_config = config.replace("audit-main.sqlite3", "audit-load.sqlite3")
            results["load"] = await stress.run(
                sim,
                pki,
                root,
                load_config,
                callers=args.load_callers,
                seconds=args.load_seconds,
                options=options,
            )
        if "growth" in sections:
            log("5: growth")
            results["growth"] = await growth.run(
                root,
                pki,
                sim,
                role_counts=_ints(args.growth_roles),
                namespaces=args.growth_namespaces,
                per_namespace=args.growth_per_namespace,
                concurrency=args.growth_concurrency,
                rounds=args.growth_rounds,
                seconds=args.growth_seconds,
                options=options,
            )
    finally:
        await sim.stop()


async def main_async(args: argparse.Namespace) -> dict[str, Any]:
    sections = set(args.sections.split(","))
    results: dict[str, Any] = {"settings": _settings(args), "machine": _machine()}
    began = time.perf_counter()
    root = Path(tempfile.mkdtemp(prefix="token-broker-bench-"))
    try:
        if sections - {"audit"}:
            await _cluster_sections(args, root, sections, results)
        if "audit" in sections:
            log(f"6: audit store, {args.audit_records:,} records")
            backends = ["sqlite", "postgres"] if args.audit_backend == "both" else [args.audit_backend]
            results["audit"] = await audit.run(
                records=args.audit_records,
                backends=backends,
                dsn=args.audit_dsn,
                writers=args.audit_writers,
                per_writer=args.audit_per_writer,
                queries=args.audit_queries,
            )
    finally:
        if args.keep:
            log(f"work directory kept: {root}")
        else:
            shutil.rmtree(root, ignore_errors=True)
    results["machine"]["load_average_at_end"] = os.getloadavg()
    results["machine"]["bench_seconds"] = time.perf_counter() - began
    results["goals"] = report.goals(results)
    return results


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    results = asyncio.run(main_async(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2, default=str) + "\n")
    print(report.render(results))
    print(f"\nresults: {args.out}")


if __name__ == "__main__":
    main()
