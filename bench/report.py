"""The table `make bench` prints, and the goals judged from the same numbers that go to results.json."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .compare import PATHS

# the goals of issue 7
BROKER_CPU_MS = 0.5
BROKER_VS_SIM = 1.5
ADDED_LATENCY_MS = 1.0
WARM_VS_KUBECTL = 50.0
LOAD_RSS_MB = 150.0
AUDIT_P50_MS = 20.0
AUDIT_GOAL_RECORDS = 1_000_000


def _errors(errors: dict[str, int]) -> str:
    return str(sum(errors.values())) if errors else "0"


def _cpu(row: dict[str, Any], name: str) -> float:
    return float(row["cpu_ms_per_token"].get(name, 0.0))


def compare_table(results: dict[str, Any]) -> list[str]:
    lines = [
        f"{'conc':>4}  {'path':<34} {'tokens/s':>9} {'p50 ms':>7} {'p99 ms':>7} "
        f"{'broker CPU':>10} {'sim CPU':>8} {'loadgen':>8} {'errors':>6}",
        f"{'':>4}  {'':<34} {'':>9} {'':>7} {'':>7} {'ms/token':>10} {'ms/tok':>8} {'ms/tok':>8}",
    ]
    for concurrency, paths in results.items():
        for name, row in paths.items():
            lines.append(
                f"{concurrency:>4}  {PATHS.get(name, name):<34} {row['tokens_per_s']:>9.0f} {row['p50_ms']:>7.2f} "
                f"{row['p99_ms']:>7.2f} {_cpu(row, 'broker'):>10.3f} {_cpu(row, 'sim'):>8.3f} "
                f"{_cpu(row, 'loadgen'):>8.3f} {_errors(row['errors']):>6}"
            )
    lines += [
        "",
        "inside the broker, mean ms per token (its own histograms): request = audit + API server + own",
    ]
    for concurrency, paths in results.items():
        for name, row in paths.items():
            t = row.get("broker_time_ms")
            if not t:
                continue
            lines.append(
                f"{concurrency:>4}  {PATHS.get(name, name):<34} request {t['http_request_ms']:6.2f} = "
                f"audit {t['audit_writes_ms']:5.2f} ({t['audit_writes_per_token']:.0f} writes) + "
                f"API server {t['kube_requests_ms']:5.2f} ({t['kube_requests_per_token']:.2f} calls) + "
                f"own {t['own_ms']:5.2f}"
            )
    return lines


def peer_table(peer: dict[str, Any]) -> list[str]:
    k, i, w = peer["kubectl"], peer["issue_process"], peer["warm_client"]
    lines = [
        f"{'how':<44} {'tokens/s':>9} {'ms/token':>9} {'client CPU ms/tok':>18} {'errors':>6}",
        f"{'kubectl create token (a process per token)':<44} {k['tokens_per_s']:>9.1f} {k['ms_per_token']:>9.1f} "
        f"{k['client_cpu_ms_per_token']:>18.1f} {_errors(k['errors']):>6}",
        f"{'token-broker issue (a process per token)':<44} {i['tokens_per_s']:>9.1f} {i['ms_per_token']:>9.1f} "
        f"{i['client_cpu_ms_per_token']:>18.1f} {_errors(i['errors']):>6}",
        f"{'warm HTTP client to the broker':<44} {w['tokens_per_s']:>9.1f} {w['p50_ms']:>9.2f} "
        f"{_cpu(w, 'loadgen'):>18.2f} {_errors(w['errors']):>6}",
        f"warm client / kubectl = {peer['warm_vs_kubectl']:.0f}x;  token-broker issue / kubectl = "
        f"{peer['issue_vs_kubectl']:.1f}x",
    ]
    busiest = peer.get("busiest")
    if busiest:
        lines.append(
            f"(context: {busiest['concurrency']} concurrent warm clients through the broker, section 2: "
            f"{busiest['tokens_per_s']:.0f} tokens/s = {busiest['vs_kubectl']:.0f}x kubectl)"
        )
    return lines


def load_table(load: dict[str, Any]) -> list[str]:
    s, c = load["steady"], load["connect"]
    cpu_s = {n: v * s["tokens"] / 1000 for n, v in s["cpu_ms_per_token"].items()}
    busy = ", ".join(f"{n} {100 * v / s['wall']:.0f}%" for n, v in sorted(cpu_s.items()))
    return [
        f"{load['callers']} callers ({load['identity']}), {load['seconds']:g} s closed loop",
        f"connect phase (1 request each, TLS handshakes): p50 {c['p50_ms']:.0f} ms, p99 {c['p99_ms']:.0f} ms, "
        f"max {c['max_ms']:.0f} ms, errors {_errors(c['errors'])}",
        f"steady: {s['tokens']} tokens, {s['tokens_per_s']:.0f} tokens/s, p50 {s['p50_ms']:.0f} ms, "
        f"p99 {s['p99_ms']:.0f} ms, max {s['max_ms']:.0f} ms",
        f"CPU per token (ms): broker {_cpu(s, 'broker'):.3f}, sim {_cpu(s, 'sim'):.3f}, "
        f"loadgen {_cpu(s, 'loadgen'):.3f};  CPU busy (of one core): {busy}",
        f"errors: {load['errors_total']} {load['errors'] or ''}".rstrip(),
        f"broker RSS: peak (VmHWM) {load['broker_peak_rss_mb']:.0f} MB (idle after start "
        f"{load['broker_peak_rss_idle_mb']:.0f} MB), at the end {load['broker_rss_end_mb']:.0f} MB",
    ]


def growth_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        f"{'case':<52} {'broker CPU':>10} {'sim CPU':>8} {'tokens/s':>9} {'p50 ms':>7} {'RSS MB':>7} {'start s':>7}",
        f"{'':<52} {'ms/token':>10} {'ms/tok':>8}",
    ]
    for row in rows:
        start = f"{row['broker_start_s']:.1f}" if "broker_start_s" in row else ""
        lines.append(
            f"{row['case']:<52} {_cpu(row, 'broker'):>10.3f} {_cpu(row, 'sim'):>8.3f} {row['tokens_per_s']:>9.0f} "
            f"{row['p50_ms']:>7.2f} {row['broker_rss_mb']:>7.0f} {start:>7}"
        )
    return lines


def audit_table(audit: dict[str, Any]) -> list[str]:
    lines: list[str] = []
    for backend, r in audit.items():
        if "error" in r:
            lines.append(f"{backend}: not measured ({r['error']})")
            continue
        gc = r["group_commit"]
        lines.append(
            f"{backend}: {r['records']:,} records; bulk load {r['bulk_records_per_s']:,.0f} records/s; group commit "
            f"{gc['issuances_per_s']:,.0f} issuances/s ({gc['ops_per_transaction']:.1f} writes per transaction)"
        )
        for name, (p50, p99, worst) in r["queries_ms"].items():
            lines.append(f"  {name:<30} p50 {p50:>7.2f} ms   p99 {p99:>7.2f} ms   max {worst:>7.2f} ms")
    return lines


def goals(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each goal: what, the measured value, the target, met or not (None: not measured in this run)."""
    out: list[dict[str, Any]] = []

    def add(goal: str, value: float | None, target: float, ok: Callable[[float], bool], unit: str) -> None:
        out.append(
            {
                "goal": goal,
                "value": value,
                "target": target,
                "unit": unit,
                "met": None if value is None else ok(value),
            }
        )

    compare = results.get("compare", {})
    for concurrency, paths in compare.items():
        broker = paths["broker"]
        cpu = _cpu(broker, "broker")
        add(
            f"broker CPU per token, concurrency {concurrency}",
            cpu,
            BROKER_CPU_MS,
            lambda v: v <= BROKER_CPU_MS,
            "ms",
        )
        sim = _cpu(broker, "sim")
        add(
            f"broker CPU / simulator CPU per TokenRequest, concurrency {concurrency}",
            cpu / sim if sim else None,
            BROKER_VS_SIM,
            lambda v: v <= BROKER_VS_SIM,
            "x",
        )
    if "1" in compare:
        added = compare["1"]["broker"]["p50_ms"] - compare["1"]["direct"]["p50_ms"]
        add(
            "added latency at concurrency 1 (broker p50 - direct p50)",
            added,
            ADDED_LATENCY_MS,
            lambda v: v <= ADDED_LATENCY_MS,
            "ms",
        )
    if "peer" in results:
        add(
            "warm client tokens/s vs kubectl",
            results["peer"]["warm_vs_kubectl"],
            WARM_VS_KUBECTL,
            lambda v: v >= WARM_VS_KUBECTL,
            "x",
        )
    if "load" in results:
        load = results["load"]
        add(f"{load['callers']} callers: errors", load["errors_total"], 0, lambda v: v == 0, "")
        add(
            f"{load['callers']} callers: broker peak RSS",
            load["broker_peak_rss_mb"],
            LOAD_RSS_MB,
            lambda v: v <= LOAD_RSS_MB,
            "MB",
        )
    for backend, r in results.get("audit", {}).items():
        if "error" in r:
            add(
                f"audit query p50 at {AUDIT_GOAL_RECORDS:,} records ({backend})",
                None,
                AUDIT_P50_MS,
                lambda v: True,
                "ms",
            )
            continue
        worst = max(p50 for p50, _, _ in r["queries_ms"].values())
        add(
            f"audit query p50, worst query, at {r['records']:,} records ({backend})",
            worst,
            AUDIT_P50_MS,
            lambda v: v <= AUDIT_P50_MS,
            "ms",
        )
    return out


def goal_lines(items: list[dict[str, Any]]) -> list[str]:
    lines = []
    for g in items:
        verdict = "n/a " if g["met"] is None else "MET " if g["met"] else "MISS"
        value = "-" if g["value"] is None else f"{g['value']:.3g}{g['unit']}"
        lines.append(f"[{verdict}] {g['goal']}: {value} (goal {g['target']:g}{g['unit']})")
    return lines


def render(results: dict[str, Any]) -> str:
    sections: list[tuple[str, list[str]]] = []
    if "compare" in results:
        sections.append(
            (
                "1+2. Direct to the simulator vs through the broker (rounds alternate)",
                compare_table(results["compare"]),
            )
        )
    if "peer" in results:
        sections.append(("3. Peers: one token after another", peer_table(results["peer"])))
    if "load" in results:
        sections.append(("4. Load", load_table(results["load"])))
    if "growth" in results:
        sections.append(
            (
                "5. Growth (concurrency " + str(results["settings"]["growth_concurrency"]) + ")",
                growth_table(results["growth"]),
            )
        )
    if "audit" in results:
        sections.append(("6. Audit store", audit_table(results["audit"])))
    sections.append(("Goals", goal_lines(results.get("goals", []))))
    out: list[str] = []
    for title, lines in sections:
        out += ["", f"== {title} ==", *lines]
    return "\n".join(out)
