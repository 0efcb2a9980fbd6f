"""alerts/ and dashboards/: promtool checks and unit-tests the rules, every dashboard query parses as PromQL, and
every token_broker_* name either uses is declared in broker/metrics.py."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import pytest
import yaml
from ops_tools import REPO, run, tool

from broker.metrics import metric_names

RULES = REPO / "alerts" / "kube-token-broker.rules.yaml"
DASHBOARD = REPO / "dashboards" / "kube-token-broker.json"
METRIC = re.compile(r"\btoken_broker_[a-z0-9_]+")
# Grafana's variables, replaced by what they stand for so promtool can parse the query
GRAFANA_VARIABLES = {"$__rate_interval": "5m", "$namespace": ".*", "$job": ".*"}


def rules() -> list[dict[str, Any]]:
    loaded = yaml.safe_load(RULES.read_text())
    return [rule for group in loaded["groups"] for rule in group["rules"]]


def dashboard() -> dict[str, Any]:
    loaded = json.loads(DASHBOARD.read_text())
    assert isinstance(loaded, dict)
    return loaded


def dashboard_queries() -> list[str]:
    return [t["expr"] for p in dashboard()["panels"] for t in p.get("targets", [])]


def family(name: str) -> str:
    """A sample name's metric family: histogram and summary series carry _bucket, _sum and _count."""
    return re.sub(r"_(bucket|sum|count)$", "", name)


def test_promtool_accepts_the_rules() -> None:
    result = run([tool("promtool"), "check", "rules", str(RULES)])
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout and "WARNING" not in result.stdout + result.stderr


def test_alerts_cover_what_operators_are_paged_for() -> None:
    names = {r["alert"] for r in rules()}
    assert {
        "TokenBrokerIssuanceFailing",
        "TokenBrokerKubernetesAPIErrors",
        "TokenBrokerAuditWriteFailures",
        "TokenBrokerJanitorWithoutLeader",
        "TokenBrokerCertificateExpiringSoon",
    } <= names
    for rule in rules():
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"] and rule["annotations"]["description"]


@pytest.mark.parametrize("source", ["rules", "dashboard"])
def test_every_metric_used_is_declared(source: str) -> None:
    texts = [r["expr"] for r in rules()] if source == "rules" else dashboard_queries()
    texts += [] if source == "rules" else [json.dumps(dashboard()["templating"])]
    used = {family(m) for text in texts for m in METRIC.findall(text)}
    assert used, "no token_broker_* metric found"
    assert used - metric_names() == set()


def test_dashboard_queries_parse_as_promql(tmp_path: Path) -> None:
    recording = []
    for i, expr in enumerate(dashboard_queries()):
        for variable, value in GRAFANA_VARIABLES.items():
            expr = expr.replace(variable, value)
        assert "$" not in expr, f"unknown Grafana variable in {expr}"
        recording.append({"record": f"dashboard:query_{i}:check", "expr": expr})
    path = tmp_path / "dashboard-queries.yaml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": recording}]}))
    result = run([tool("promtool"), "check", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr


def test_dashboard_shows_what_the_issue_asks_for() -> None:
    board = dashboard()
    ids = [p["id"] for p in board["panels"]]
    assert len(ids) == len(set(ids))
    for panel in board["panels"]:
        grid = panel["gridPos"]
        assert grid["x"] + grid["w"] <= 24
    queries = "\n".join(dashboard_queries())
    for needle in (
        "token_broker_tokens_issued_total",  # issuance rate by outcome
        "token_broker_tokens_denied_total",
        "token_broker_tokens_failed_total",
        "histogram_quantile(0.99, sum by (le) (rate(token_broker_issuance_duration_seconds_bucket",
        "sum by (code) (rate(token_broker_kube_requests_total",
        "max by (role) (token_broker_active_tokens",
        "sum by (method, reason) (rate(token_broker_auth_failures_total",
        "token_broker_rate_limited_total",
        "token_broker_janitor_leader",
        "token_broker_audit_write_duration_seconds_bucket",
        "token_broker_audit_write_failures_total",
    ):
        assert needle in queries, needle
    assert {v["name"] for v in board["templating"]["list"]} == {"datasource", "namespace", "job"}


# -- promtool test rules: the alerts fire on the series that should fire them, and only on those -------------


def _alert(name: str, severity: str, summary: str, **labels: str) -> dict[str, Any]:
    (rule,) = [r for r in rules() if r.get("alert") == name]
    return {
        "exp_labels": {"severity": severity, **labels},
        "exp_annotations": {"summary": summary, "description": rule["annotations"]["description"].strip()},
    }


def _case(series: dict[str, str], checks: list[tuple[str, str, list[dict[str, Any]]]]) -> dict[str, Any]:
    return {
        "interval": "1m",
        "input_series": [{"series": s, "values": v} for s, v in series.items()],
        "alert_rule_test": [{"eval_time": t, "alertname": a, "exp_alerts": e} for t, a, e in checks],
    }


ISSUED = 'token_broker_tokens_issued_total{role="deployer",token_namespace="ci-*",mode="token-request"}'
FAILED = 'token_broker_tokens_failed_total{role="deployer",kind="upstream_unavailable"}'
EXPIRY = 'token_broker_tls_certificate_expiry_timestamp_seconds{certificate="%s",pod="%s"}'


def test_alerts_fire_exactly_when_they_should(tmp_path: Path) -> None:
    tests = [
        # 60 issued and 12 failed a minute: 1 in 6 fails → warning, not critical
        _case(
            {ISSUED: "0+60x40", FAILED: "0+12x40"},
            [
                (
                    "30m",
                    "TokenBrokerIssuanceFailing",
                    [
                        _alert(
                            "TokenBrokerIssuanceFailing", "warning", "16.67% of allowed token requests fail."
                        )
                    ],
                ),
                ("30m", "TokenBrokerIssuanceDown", []),
            ],
        ),
        # nothing was ever issued (no issued series at all) and everything fails → both fire
        _case(
            {FAILED: "0+10x40"},
            [
                (
                    "30m",
                    "TokenBrokerIssuanceDown",
                    [
                        _alert(
                            "TokenBrokerIssuanceDown",
                            "critical",
                            "100% of allowed token requests fail: CI cannot get credentials.",
                        )
                    ],
                ),
            ],
        ),
        # healthy traffic: no failure alert
        _case(
            {ISSUED: "0+60x40", FAILED: "0+0x40"},
            [("30m", "TokenBrokerIssuanceFailing", []), ("30m", "TokenBrokerIssuanceDown", [])],
        ),
        # one audit write failure pages
        _case(
            {"token_broker_audit_write_failures_total": "0 0 0 1 1 1 1 1 1 1"},
            [
                (
                    "6m",
                    "TokenBrokerAuditWriteFailures",
                    [
                        _alert(
                            "TokenBrokerAuditWriteFailures",
                            "critical",
                            "The broker cannot write its audit store.",
                        )
                    ],
                ),
                ("20m", "TokenBrokerAuditWriteFailures", []),
            ],
        ),
        # two replicas, neither leads → alert; one leads → quiet
        _case(
            {
                'token_broker_janitor_leader{pod="a"}': "0x20",
                'token_broker_janitor_leader{pod="b"}': "0x10 1x10",
            },
            [
                (
                    "10m",
                    "TokenBrokerJanitorWithoutLeader",
                    [
                        _alert(
                            "TokenBrokerJanitorWithoutLeader",
                            "warning",
                            "No broker replica holds the janitor Lease.",
                        )
                    ],
                ),
                ("20m", "TokenBrokerJanitorWithoutLeader", []),
            ],
        ),
        # the serving certificate expires 7 days after the start; the client CA in a year
        _case(
            {EXPIRY % ("server", "a"): "604800x200", EXPIRY % ("client_ca", "a"): "31536000x200"},
            [
                (
                    "2h",
                    "TokenBrokerCertificateExpiringSoon",
                    [
                        _alert(
                            "TokenBrokerCertificateExpiringSoon",
                            "warning",
                            "The broker's serving certificate expires in 6d 22h 0m 0s.",
                            certificate="server",
                            pod="a",
                        )
                    ],
                ),
                ("2h", "TokenBrokerCertificateExpiryCritical", []),
                ("2h", "TokenBrokerClientCAExpiringSoon", []),
            ],
        ),
        # API server answers 5xx to a tenth of the calls
        _case(
            {
                'token_broker_kube_requests_total{verb="create",resource="serviceaccounts/token",code="201"}': "0+90x30",
                'token_broker_kube_requests_total{verb="create",resource="serviceaccounts/token",code="503"}': "0+10x30",
            },
            [
                (
                    "20m",
                    "TokenBrokerKubernetesAPIErrors",
                    [
                        _alert(
                            "TokenBrokerKubernetesAPIErrors",
                            "warning",
                            "10% of the broker's Kubernetes API calls fail.",
                        )
                    ],
                ),
                ("20m", "TokenBrokerKubernetesForbidden", []),
            ],
        ),
    ]
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "alerts-test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run([tool("promtool"), "test", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
