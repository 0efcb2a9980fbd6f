"""broker/metrics.py: the exposition passes `promtool check metrics`, label values stay in bounded sets, and each
helper moves exactly the series it names."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_tools import run, tool
from prometheus_client import REGISTRY, CollectorRegistry, generate_latest

from broker import metric_labels, metrics
from broker.metric_labels import namespace_label, status_class
from broker.metrics import BrokerMetrics

EXPECTED_NAMES = {
    "token_broker_tokens_issued_total",
    "token_broker_tokens_denied_total",
    "token_broker_tokens_failed_total",
    "token_broker_tokens_revoked_total",
    "token_broker_issuance_duration_seconds",
    "token_broker_http_requests_total",
    "token_broker_http_request_duration_seconds",
    "token_broker_kube_requests_total",
    "token_broker_kube_request_duration_seconds",
    "token_broker_audit_write_duration_seconds",
    "token_broker_audit_write_failures_total",
    "token_broker_jwks_refresh_total",
    "token_broker_active_tokens",
    "token_broker_auth_failures_total",
    "token_broker_rate_limited_total",
    "token_broker_janitor_runs_total",
    "token_broker_janitor_deletions_total",
    "token_broker_janitor_leader",
    "token_broker_build_info",
    "token_broker_config_reloads_total",
    "token_broker_tls_certificate_expiry_timestamp_seconds",
    "token_broker_audit_sink_lag_events",
    "token_broker_audit_sink_lag_seconds",
    "token_broker_audit_sink_delivered_total",
    "token_broker_audit_sink_failures_total",
}


def touch_everything(m: BrokerMetrics) -> None:
    m.declare_roles(["deployer", "reader"])
    m.token_issued("deployer", "ci-42", ["staging", "ci-*"], "token-request", 0.004)
    m.token_issued("reader", "staging", ["staging"], "legacy-secret", 0.2)
    m.token_denied("no_grant", 0.0007)
    m.token_failed("deployer", "upstream_unavailable", 3.0)
    m.token_revoked("deployer")
    m.set_active_tokens({"deployer": 3, "reader": 1})
    m.http_request("/v1/tokens", "POST", 201, 0.01)
    m.http_request(None, "GET", 404, 0.0001)
    m.kube_request("create", "serviceaccounts/token", 201, 0.02)
    m.kube_request("get", "serviceaccounts", None, 10.0)
    m.audit_write(0.002)
    m.audit_write_failed()
    m.jwks_refreshed("cluster", "success")
    m.auth_failure("mtls", "unknown")
    m.rate_limited_request()
    m.janitor_run("success")
    m.janitor_deleted("secrets", 2)
    m.set_janitor_leader(True)
    m.config_reload("failure")
    m.set_tls_certificate_expiry("server", datetime(2030, 1, 1, tzinfo=UTC))
    m.declare_sinks(["siem"])
    m.set_sink_lag("siem", 12, 3.5)
    m.sink_delivered("siem", 100)
    m.sink_failure("siem", "connect")


def promtool_check(text: str) -> None:
    result = run([tool("promtool"), "check", "metrics"], stdin=text)
    assert result.returncode == 0 and not result.stdout.strip() and not result.stderr.strip(), (
        result.stdout + result.stderr
    )


def test_every_metric_touched_passes_promtool_lint() -> None:
    registry = CollectorRegistry()
    m = BrokerMetrics(registry)
    touch_everything(m)
    text = generate_latest(registry).decode()
    promtool_check(text)
    # every family has at least one sample: nothing declared and forgotten
    for name in EXPECTED_NAMES:
        assert any(line.startswith(name) for line in text.splitlines()), name


def test_default_registry_exposition_passes_promtool() -> None:
    """What /metrics serves: the broker's families plus prometheus_client's process and platform collectors."""
    promtool_check(generate_latest(REGISTRY).decode())


def test_declared_names_are_the_documented_set() -> None:
    assert metrics.metric_names() == EXPECTED_NAMES
    assert metrics.metric_names(BrokerMetrics(CollectorRegistry())) == EXPECTED_NAMES


def test_issued_denied_failed_move_counters_and_latency_by_exactly_one() -> None:
    registry = CollectorRegistry()
    m = BrokerMetrics(registry)

    def value(name: str, **labels: str) -> float:
        found = registry.get_sample_value(name, labels)
        return 0.0 if found is None else found

    m.token_issued("deployer", "ci-7", ["staging", "ci-*"], "token-request", 0.003)
    m.token_issued("deployer", "ci-8", ["staging", "ci-*"], "token-request", 0.003)
    m.token_issued("deployer", "staging", ["staging", "ci-*"], "token-request", 0.003)
    m.token_denied("namespace", 0.001)
    m.token_failed("deployer", "verification", 0.5)
    m.token_revoked("deployer")

    issued = "token_broker_tokens_issued_total"
    assert value(issued, role="deployer", token_namespace="ci-*", mode="token-request") == 2
    assert value(issued, role="deployer", token_namespace="staging", mode="token-request") == 1
    assert value("token_broker_tokens_denied_total", reason_kind="namespace") == 1
    assert value("token_broker_tokens_denied_total", reason_kind="ttl") == 0
    assert value("token_broker_tokens_failed_total", role="deployer", kind="verification") == 1
    assert value("token_broker_tokens_revoked_total", role="deployer") == 1
    count = "token_broker_issuance_duration_seconds_count"
    assert value(count, outcome="issued") == 3
    assert value(count, outcome="denied") == 1
    assert value(count, outcome="failed") == 1
    # 3 ms lands in the 5 ms bucket, not in the 2.5 ms one: the buckets resolve milliseconds
    bucket = "token_broker_issuance_duration_seconds_bucket"
    assert value(bucket, outcome="issued", le="0.0025") == 0
    assert value(bucket, outcome="issued", le="0.005") == 3
    assert value(bucket, outcome="failed", le="10.0") == 1


def test_fixed_vocabularies_start_at_zero() -> None:
    registry = CollectorRegistry()
    BrokerMetrics(registry)
    for kind in ("unknown_role", "no_grant", "ttl", "invalid_request"):
        assert registry.get_sample_value("token_broker_tokens_denied_total", {"reason_kind": kind}) == 0
    for outcome in ("issued", "denied", "failed"):
        labels = {"outcome": outcome}
        assert registry.get_sample_value("token_broker_issuance_duration_seconds_count", labels) == 0
    assert registry.get_sample_value("token_broker_janitor_runs_total", {"outcome": "failure"}) == 0
    assert registry.get_sample_value("token_broker_janitor_leader") == 0


def test_active_tokens_drop_to_zero_for_roles_no_longer_reported() -> None:
    registry = CollectorRegistry()
    m = BrokerMetrics(registry)
    m.set_active_tokens({"deployer": 4, "reader": 2})
    m.set_active_tokens({"deployer": 1})
    assert registry.get_sample_value("token_broker_active_tokens", {"role": "deployer"}) == 1
    assert registry.get_sample_value("token_broker_active_tokens", {"role": "reader"}) == 0


def test_time_audit_write_counts_a_failure_and_reraises() -> None:
    registry = CollectorRegistry()
    m = BrokerMetrics(registry)
    with m.time_audit_write():
        pass
    with pytest.raises(OSError), m.time_audit_write():
        raise OSError("disk full")
    assert registry.get_sample_value("token_broker_audit_write_duration_seconds_count") == 2
    assert registry.get_sample_value("token_broker_audit_write_failures_total") == 1


def test_kube_request_without_answer_is_code_error_and_http_unmatched_route() -> None:
    registry = CollectorRegistry()
    m = BrokerMetrics(registry)
    m.kube_request("create", "serviceaccounts/token", None, 10.0)
    m.http_request(None, "BREW", 418, 0.001)
    labels = {"verb": "create", "resource": "serviceaccounts/token", "code": "error"}
    assert registry.get_sample_value("token_broker_kube_requests_total", labels) == 1
    http = {"route": "unmatched", "method": "other", "status_class": "4xx"}
    assert registry.get_sample_value("token_broker_http_requests_total", http) == 1


def test_tls_certificate_expiry_and_build_info() -> None:
    registry = CollectorRegistry()
    m = BrokerMetrics(registry)
    not_after = datetime(2031, 5, 17, 12, 0, tzinfo=UTC)
    m.set_tls_certificate_expiry("server", not_after)
    expiry = "token_broker_tls_certificate_expiry_timestamp_seconds"
    assert registry.get_sample_value(expiry, {"certificate": "server"}) == not_after.timestamp()
    text = generate_latest(registry).decode()
    assert 'token_broker_build_info{python="' in text


@pytest.mark.parametrize(
    ("namespace", "patterns", "label"),
    [
        ("staging", ["staging", "ci-*"], "staging"),
        ("ci-1234", ["staging", "ci-*"], "ci-*"),
        ("team-a-dev", ["team-?-dev"], "team-?-dev"),
        ("kube-system", ["*"], "*"),
        ("prod", ["staging"], "other"),
    ],
)
def test_namespace_label_is_the_matching_role_pattern(
    namespace: str, patterns: list[str], label: str
) -> None:
    assert namespace_label(namespace, patterns) == label


def test_status_class() -> None:
    assert [status_class(s) for s in (101, 200, 302, 429, 503, 0, 600)] == [
        "1xx",
        "2xx",
        "3xx",
        "4xx",
        "5xx",
        "other",
        "other",
    ]


_ANY_TEXT = st.text(min_size=0, max_size=30)


@settings(max_examples=60, deadline=None)
@given(method=_ANY_TEXT, reason=_ANY_TEXT, verb=_ANY_TEXT, resource=_ANY_TEXT, kind=_ANY_TEXT)
def test_caller_supplied_strings_never_become_label_values(
    method: str, reason: str, verb: str, resource: str, kind: str
) -> None:
    """Whatever string reaches a vocabulary label, the value recorded is from the vocabulary or "other"."""
    registry = CollectorRegistry()
    m = BrokerMetrics(registry)
    m.auth_failure(method, reason)  # type: ignore[arg-type]
    m.kube_request(verb, resource, 200, 0.01)  # type: ignore[arg-type]
    m.token_denied(kind, 0.01)  # type: ignore[arg-type]
    m.token_failed("r", kind, 0.01)  # type: ignore[arg-type]
    m.jwks_refreshed(resource, "success")  # type: ignore[arg-type]
    allowed = {
        "method": {"mtls", "api_key", "oidc", "kubernetes", "none", "other"},
        "reason": set(metric_labels.AUTH_REASONS) | {"other"},
        "verb": set(metric_labels.KUBE_VERBS) | {"other"},
        "resource": set(metric_labels.KUBE_RESOURCES) | {"other"},
        "reason_kind": set(metric_labels.DENY_KINDS) | {"other"},
        "kind": set(metric_labels.FAIL_KINDS) | {"other"},
        "source": {"cluster", "oidc", "other"},
    }
    for family in registry.collect():
        for sample in family.samples:
            for label, value in sample.labels.items():
                if label in allowed:
                    assert value in allowed[label], (family.name, label, value)
