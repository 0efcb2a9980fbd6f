"""`python -m bench --smoke`: the whole benchmark at a tiny size, so `make bench` keeps working.

Real processes throughout (the simulator, brokers, kubectl, `token-broker issue`). Nothing here judges a time:
the assertions are that every section ran, every token was issued, and the numbers the report is built from
are there.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parents[2]
SMOKE_TIMEOUT = 240


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str]:
    out = tmp_path_factory.mktemp("bench") / "results.json"
    proc = subprocess.run(
        [sys.executable, "-m", "bench", "--smoke", "--out", str(out)],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=SMOKE_TIMEOUT,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-4000:]
    return json.loads(out.read_text()), proc.stdout


def _clean(row: dict[str, Any]) -> None:
    assert row["tokens"] > 0
    assert row["errors"] == {}
    assert row["p99_ms"] >= row["p50_ms"] > 0


@pytest.mark.kubectl
def test_direct_and_broker_rounds_issue_tokens_and_measure_each_process(
    smoke: tuple[dict[str, Any], str],
) -> None:
    results, _ = smoke
    assert set(results["compare"]) == {"1", "4"}
    for paths in results["compare"].values():
        assert set(paths) == {"direct", "broker", "broker_revocable"}
        for row in paths.values():
            _clean(row)
            assert set(row["cpu_ms_per_token"]) == {"broker", "sim", "loadgen"}
        # the CPU accounting reads the right processes: each path keeps its own server busy
        assert paths["direct"]["cpu_ms_per_token"]["sim"] > 0
        assert paths["broker"]["cpu_ms_per_token"]["broker"] > 0
        # the broker's own histograms: a write-ahead record and its completion per token, and the API calls
        for name in ("broker", "broker_revocable"):
            inside = paths[name]["broker_time_ms"]
            assert inside["audit_writes_per_token"] == 2
            assert inside["http_request_ms"] > inside["audit_writes_ms"] > 0
        assert paths["broker_revocable"]["broker_time_ms"]["kube_requests_per_token"] >= 2


@pytest.mark.kubectl
def test_peers_kubectl_and_token_broker_issue_each_issue_every_token(
    smoke: tuple[dict[str, Any], str],
) -> None:
    peer = smoke[0]["peer"]
    assert peer["kubectl"]["tokens"] == peer["kubectl"]["runs"] == 2
    assert peer["issue_process"]["tokens"] == peer["issue_process"]["runs"] == 2
    _clean(peer["warm_client"])
    assert peer["warm_vs_kubectl"] > 0


@pytest.mark.kubectl
def test_load_has_no_errors_and_reports_the_brokers_peak_memory(smoke: tuple[dict[str, Any], str]) -> None:
    load = smoke[0]["load"]
    assert load["errors_total"] == 0
    _clean(load["steady"])
    assert load["connect"]["tokens"] == load["callers"] == 20
    assert load["broker_peak_rss_mb"] >= load["broker_peak_rss_idle_mb"] > 0


@pytest.mark.kubectl
def test_growth_covers_every_config_size_and_the_seeded_cluster(smoke: tuple[dict[str, Any], str]) -> None:
    rows = smoke[0]["growth"]
    assert [r["case"] for r in rows[:2]] == ["2 roles + 2 grants", "20 roles + 20 grants"]
    assert len(rows) == 4 and "30 SAs" in rows[2]["case"] and "30 SAs" in rows[3]["case"]
    for row in rows:
        _clean(row)


@pytest.mark.kubectl
def test_audit_section_reuses_audit_bench_and_goals_are_judged(smoke: tuple[dict[str, Any], str]) -> None:
    results, stdout = smoke
    sqlite = results["audit"]["sqlite"]
    assert sqlite["records"] == 2000
    assert set(sqlite["queries_ms"]) >= {"caller+1 day, issuances", "jti lookup"}
    assert {g["goal"] for g in results["goals"]} >= {
        "added latency at concurrency 1 (broker p50 - direct p50)",
        "warm client tokens/s vs kubectl",
        "20 callers: errors",
    }
    assert all(g["met"] in (True, False) for g in results["goals"])
    for title in ("== 1+2.", "== 3.", "== 4.", "== 5.", "== 6.", "== Goals =="):
        assert title in stdout
