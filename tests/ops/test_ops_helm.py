"""The Helm chart, rendered and linted by real Helm (the Go library in the helm-python-sdk wheel): clean lint,
well-formed documents, the hardened pod, a config.toml the broker itself accepts, and RBAC that is exactly
broker.rbac_manifest.broker_rules() for the same roles."""

from __future__ import annotations

import copy
import json
import tomllib
from pathlib import Path
from typing import Any

import pytest
import yaml
from hypothesis import given, settings
from hypothesis import strategies as st
from ops_tools import CHART, NAMESPACE, REPO, documents, helm, load_values, notes, only, render

from broker.kube.rbac import broker_rules
from broker.settings import (
    ApiKeyConfig,
    AuditSettings,
    AuthConfig,
    BrokerConfig,
    ClusterConfig,
    GrantConfig,
    JanitorConfig,
    KubernetesAuthConfig,
    MtlsConfig,
    OidcIssuerConfig,
    RateLimitConfig,
    RoleConfig,
    ServerConfig,
    parse_config,
)

FULL = load_values("values-full.yaml")
CONFIG_PATH = Path("/etc/token-broker/config/config.toml")
# keys of [server] the chart derives from ports, tls and clientCA (values may not set them)
CHART_OWNED_SERVER_KEYS = {"listen", "metrics_listen", "tls_cert", "tls_key", "client_ca"}
# rendering the 44 kB dashboard ConfigMap only to skip it would make the property tests slow
NO_DASHBOARD = {"grafanaDashboard": {"enabled": False}}


def with_values(base: dict[str, Any] | None, **overrides: Any) -> dict[str, Any]:
    values = copy.deepcopy(base) if base is not None else {}
    values.update(overrides)
    return values


def config_toml(values: dict[str, Any] | None) -> str:
    docs = [
        d
        for d in documents({**(values or {}), **NO_DASHBOARD})
        if d["kind"] == "ConfigMap" and "config.toml" in d.get("data", {})
    ]
    assert len(docs) == 1
    return str(docs[0]["data"]["config.toml"])


def config_of(values: dict[str, Any] | None) -> BrokerConfig:
    return parse_config(config_toml(values), CONFIG_PATH)


def audit_of(values: dict[str, Any] | None) -> AuditSettings:
    return config_of(values).audit


def problems(report: dict[str, Any]) -> list[dict[str, Any]]:
    """Lint findings of severity warning (2) or error (3); info (1, "icon is recommended") is not a problem."""
    return [m for m in report["messages"] if m["severity"] >= 2] + [{"error": e} for e in report["errors"]]


# -- lint and render -------------------------------------------------------------------------------------------


@pytest.mark.parametrize("values", [None, FULL], ids=["default", "full"])
@pytest.mark.parametrize("strict", [False, True], ids=["lint", "lint-strict"])
def test_lint_is_clean(values: dict[str, Any] | None, strict: bool) -> None:
    report = helm().lint(str(CHART), values, strict=strict, namespace=NAMESPACE)
    assert report["total_charts_linted"] == 1
    assert problems(report) == []


@pytest.mark.parametrize("values", [None, FULL], ids=["default", "full"])
def test_every_document_is_a_kubernetes_object(values: dict[str, Any] | None) -> None:
    docs = documents(values)
    assert docs
    for doc in docs:
        assert isinstance(doc.get("apiVersion"), str) and doc["apiVersion"], doc
        assert isinstance(doc.get("kind"), str) and doc["kind"], doc
        assert doc["metadata"]["name"], doc
        assert doc["metadata"]["labels"]["app.kubernetes.io/managed-by"] == "Helm"
    names = [(d["kind"], d["metadata"].get("namespace"), d["metadata"]["name"]) for d in docs]
    assert len(names) == len(set(names)), "two objects with the same kind and name"


def test_default_and_full_render_the_expected_objects() -> None:
    default_kinds = sorted(d["kind"] for d in documents(None))
    assert default_kinds == sorted(
        [
            "ClusterRole",
            "ClusterRoleBinding",
            "ConfigMap",  # config.toml
            "ConfigMap",  # Grafana dashboard
            "Deployment",
            "NetworkPolicy",
            "PodDisruptionBudget",
            "Role",  # leases
            "RoleBinding",
            "Service",
            "ServiceAccount",
        ]
    )
    full_kinds = {d["kind"] for d in documents(FULL)}
    assert {"ServiceMonitor", "PrometheusRule", "Certificate"} <= full_kinds


@pytest.mark.parametrize("values", [None, FULL], ids=["default", "full"])
def test_pod_is_hardened(values: dict[str, Any] | None) -> None:
    pod = only(documents(values), "Deployment")["spec"]["template"]["spec"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["seccompProfile"] == {"type": "RuntimeDefault"}
    (container,) = pod["containers"]
    sc = container["securityContext"]
    assert sc["runAsNonRoot"] is True
    assert sc["allowPrivilegeEscalation"] is False
    assert sc["readOnlyRootFilesystem"] is True
    assert sc["capabilities"] == {"drop": ["ALL"]}
    assert sc["seccompProfile"] == {"type": "RuntimeDefault"}
    mounts = {m["mountPath"]: m for m in container["volumeMounts"]}
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]["name"]]
    assert all("subPath" not in m for m in container["volumeMounts"]), (
        "subPath mounts never see rotated Secrets"
    )
    assert container["resources"]["requests"] and container["resources"]["limits"]["memory"]


@pytest.mark.parametrize("values", [None, FULL], ids=["default", "full"])
def test_deployment_probes_ports_and_rolling_update(values: dict[str, Any] | None) -> None:
    deployment = only(documents(values), "Deployment")
    assert deployment["spec"]["strategy"]["type"] == "RollingUpdate"
    assert deployment["spec"]["replicas"] == (values or {}).get("replicaCount", 1)
    (container,) = deployment["spec"]["template"]["spec"]["containers"]
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "api", "scheme": "HTTPS"}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "api", "scheme": "HTTPS"}
    assert {p["name"]: p["containerPort"] for p in container["ports"]} == {"api": 8443, "metrics": 9090}
    assert container["args"][:3] == ["serve", "--config", str(CONFIG_PATH)]
    service = only(documents(values), "Service")
    assert {p["name"]: p["targetPort"] for p in service["spec"]["ports"]} == {
        "api": "api",
        "metrics": "metrics",
    }


def test_tls_and_client_ca_volumes_follow_values() -> None:
    pod = only(documents(FULL), "Deployment")["spec"]["template"]["spec"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert volumes["tls"]["secret"]["secretName"] == "broker-tls"
    assert volumes["client-ca"]["configMap"]["name"] == "broker-client-ca"
    assert volumes["data"]["persistentVolumeClaim"]["claimName"] == "token-broker-data"
    certificate = only(documents(FULL), "Certificate")
    assert certificate["spec"]["secretName"] == "broker-tls"

    without_ca = documents({"clientCA": {"enabled": False}, "config": {"auth": {"api_keys": FULL_API_KEYS}}})
    pod = only(without_ca, "Deployment")["spec"]["template"]["spec"]
    assert "client-ca" not in {v["name"] for v in pod["volumes"]}
    cfg = config_of({"clientCA": {"enabled": False}, "config": {"auth": {"api_keys": FULL_API_KEYS}}})
    assert cfg.server.client_ca is None and not cfg.auth.mtls.enabled


FULL_API_KEYS = FULL["config"]["auth"]["api_keys"]


def test_config_checksum_rolls_the_pods_when_config_changes() -> None:
    def checksum(values: dict[str, Any] | None) -> str:
        pod = only(documents(values), "Deployment")["spec"]["template"]
        return str(pod["metadata"]["annotations"]["checksum/config"])

    assert checksum(None) == checksum(None)
    changed = {"config": {"server": {"max_body_bytes": 1024}}}
    assert checksum(None) != checksum(changed)


# -- config.toml ----------------------------------------------------------------------------------------------


def test_default_config_is_accepted_by_the_broker() -> None:
    cfg = config_of(None)
    assert cfg.server.listen == "0.0.0.0:8443"
    assert cfg.server.metrics_listen == "0.0.0.0:9090"
    assert cfg.server.tls_cert == Path("/etc/token-broker/tls/tls.crt")
    assert cfg.server.client_ca == Path("/etc/token-broker/client-ca/ca.crt")
    assert [(c.name, c.in_cluster) for c in cfg.clusters] == [("in-cluster", True)]
    assert cfg.roles == () and cfg.grants == ()


def test_full_config_is_accepted_and_says_what_the_values_say() -> None:
    cfg = config_of(FULL)
    assert cfg.server.max_body_bytes == 32768
    assert cfg.server.shutdown_grace_seconds == 15
    assert cfg.server.client_ca == Path("/etc/token-broker/client-ca/client-ca.pem")
    assert [c.name for c in cfg.clusters] == ["home", "edge"]
    edge = cfg.cluster("edge")
    assert edge is not None and edge.kubeconfig == Path("/etc/token-broker/clusters/edge.kubeconfig")
    deployer = cfg.roles[0]
    assert deployer.namespaces == ("staging", "ci-*")
    assert deployer.default_ttl == 900 and deployer.max_ttl == 3600 and deployer.revocable
    assert dict(deployer.service_account_labels) == {
        "team": "platform",
        "app.kubernetes.io/managed-by": "kube-token-broker",
    }
    assert dict(deployer.service_account_annotations) == {"example.com/owner": "platform-team@example.com"}
    assert deployer.description == FULL["config"]["roles"][0]["description"]
    reader = cfg.roles[1]
    assert reader.create_service_account is False and reader.namespace_selector == "team=platform"
    assert reader.default_ttl == 1800
    assert [g.name for g in cfg.grants] == ["ci-deploys", "grant-1", "gitlab-platform"]
    assert cfg.grants[0].max_ttl == 1800
    assert cfg.auth.mtls.enabled and [k.name for k in cfg.auth.api_keys] == ["jenkins"]
    (gitlab,) = cfg.auth.oidc
    assert gitlab.issuer == "https://gitlab.example.com" and gitlab.groups_claim == "groups"
    assert cfg.auth.kubernetes.audiences == ("token-broker",)
    assert cfg.grants[0].rate_limit is not None and cfg.grants[0].rate_limit.burst == 20
    assert dict(cfg.grants[2].claims) == {"project_path": ("platform/*",), "ref_protected": ("true",)}


@settings(max_examples=40, deadline=None)
@given(
    text=st.text(
        alphabet=st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"),
        min_size=0,
        max_size=40,
    )
)
def test_any_string_survives_the_toml_rendering(text: str) -> None:
    """Quotes, backslashes, newlines, control characters and non-ASCII text come out of config.toml unchanged."""
    values = {
        "config": {
            "roles": [{"name": "r", "service_account": "r", "namespaces": ["a"], "description": text}],
        }
    }
    parsed = tomllib.loads(config_toml(values))
    assert parsed["roles"][0]["description"] == text


def test_embedded_audit_store_lives_on_the_data_volume() -> None:
    assert audit_of(None).backend == "sqlite"
    assert audit_of(None).sqlite_path == Path("/var/lib/token-broker/audit.sqlite3")
    moved = {"persistence": {"mountPath": "/data"}}
    assert audit_of(moved).sqlite_path == Path("/data/audit.sqlite3")


def test_postgres_audit_store_from_values() -> None:
    values = {
        "replicaCount": 3,
        "config": {
            "audit": {
                "backend": "postgres",
                "postgres_dsn": "postgresql://token_broker@postgres.db.svc:5432/token_broker?sslmode=verify-full",
                "retention_days": 365,
                "jsonl_path": "-",
            }
        },
    }
    audit = audit_of(values)
    assert audit.backend == "postgres" and audit.retention_days == 365 and audit.jsonl_path == "-"
    assert "sqlite_path" not in tomllib.loads(config_toml(values))["audit"]
    assert "WARNING" not in notes(values)


def test_nested_tables_and_arrays_of_tables_render_as_toml() -> None:
    values = {
        "config": {
            "auth": {
                "kubernetes": {"enabled": True, "audiences": ["token-broker"]},
                "oidc": [
                    {"issuer": "https://gitlab.example.com", "audience": "token-broker"},
                    {
                        "issuer": "https://jenkins.example.com/oidc",
                        "audience": "token-broker",
                        "groups": ["ci"],
                    },
                ],
            },
        }
    }
    text = config_toml(values)
    assert "[auth.kubernetes]" in text and text.count("[[auth.oidc]]") == 2
    parsed = tomllib.loads(text)
    assert parsed["auth"]["kubernetes"] == {"enabled": True, "audiences": ["token-broker"]}
    assert parsed["auth"]["oidc"] == values["config"]["auth"]["oidc"]
    cfg = config_of(values)
    assert [o.issuer for o in cfg.auth.oidc] == [
        "https://gitlab.example.com",
        "https://jenkins.example.com/oidc",
    ]


def test_values_schema_refuses_unknown_and_chart_owned_keys() -> None:
    h = helm()
    for bad in (
        {"config": {"roles": [{"name": "r", "service_account": "r", "namespaces": ["a"], "max_tll": "1h"}]}},
        {"config": {"server": {"listen": "0.0.0.0:1"}}},
        {"replicas": 3},
        {
            "config": {
                "roles": [{"name": "r", "service_account": "r", "namespaces": ["a"], "mode": "forever"}]
            }
        },
    ):
        with pytest.raises(h.HelmValuesError):
            render(bad)
        assert problems(h.lint(str(CHART), bad, strict=True)), bad


def _schema() -> dict[str, Any]:
    loaded = json.loads((CHART / "values.schema.json").read_text())
    assert isinstance(loaded, dict)
    return loaded


@pytest.mark.parametrize(
    ("pointer", "model", "except_keys"),
    [
        ("server", ServerConfig, CHART_OWNED_SERVER_KEYS),
        ("clusters.items", ClusterConfig, set()),
        ("roles.items", RoleConfig, set()),
        ("grants.items", GrantConfig, set()),
        ("auth", AuthConfig, set()),
        ("auth.mtls", MtlsConfig, set()),
        ("auth.api_keys.items", ApiKeyConfig, set()),
        ("auth.oidc.items", OidcIssuerConfig, set()),
        ("auth.kubernetes", KubernetesAuthConfig, set()),
        ("auth.rate_limit", RateLimitConfig, set()),
        ("grants.items.rate_limit", RateLimitConfig, set()),
        ("janitor", JanitorConfig, set()),
        ("audit", AuditSettings, set()),
    ],
)
def test_values_schema_follows_the_config_models(pointer: str, model: Any, except_keys: set[str]) -> None:
    """A key added to broker/config.py must be added to values.schema.json too (the schema refuses unknown keys)."""
    node = _schema()["properties"]["config"]
    for part in pointer.split("."):
        node = node["items"] if part == "items" else node["properties"][part]
    assert set(node["properties"]) == set(model.model_fields) - except_keys


def test_values_schema_top_level_follows_broker_config() -> None:
    assert set(_schema()["properties"]["config"]["properties"]) == set(BrokerConfig.model_fields)


# -- RBAC -----------------------------------------------------------------------------------------------------

TOKEN_REVIEW_RULE = {
    "apiGroups": ["authentication.k8s.io"],
    "resources": ["tokenreviews"],
    "verbs": ["create"],
}


def expected_rules(cfg: BrokerConfig) -> list[dict[str, Any]]:
    """broker_rules() of the roles of in_cluster clusters, with TokenReviews when [auth.kubernetes] reviews
    caller tokens in an in_cluster cluster."""
    in_cluster = {c.name for c in cfg.clusters if c.in_cluster}
    review = cfg.auth.kubernetes.enabled and cfg.token_review_cluster in in_cluster
    return broker_rules([r for r in cfg.roles if r.cluster in in_cluster], token_review=review)


def config_and_cluster_role(values: dict[str, Any]) -> tuple[BrokerConfig, dict[str, Any]]:
    docs = documents({**values, **NO_DASHBOARD})
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap" and "config.toml" in d["data"]]
    return parse_config(configmap["data"]["config.toml"], CONFIG_PATH), only(docs, "ClusterRole")


def test_full_values_cluster_role_is_broker_rules_of_the_in_cluster_roles() -> None:
    cfg, cluster_role = config_and_cluster_role(FULL)
    home_roles = [r for r in cfg.roles if r.cluster == "home"]
    assert [r.name for r in home_roles] == ["deployer", "reader", "legacy-robot"]
    assert cfg.auth.kubernetes.enabled and cfg.token_review_cluster == "home"
    assert cluster_role["rules"] == broker_rules(home_roles, token_review=True)  # same rules, same order
    binding = only(documents(FULL), "ClusterRoleBinding")
    assert binding["roleRef"]["name"] == cluster_role["metadata"]["name"]
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "broker", "namespace": NAMESPACE}]


def test_default_cluster_role_is_broker_rules_of_no_roles() -> None:
    _, cluster_role = config_and_cluster_role({})
    assert cluster_role["rules"] == broker_rules([])


_ROLE = st.fixed_dictionaries(
    {},
    optional={
        "mode": st.sampled_from(["token-request", "legacy-secret"]),
        "revocable": st.booleans(),
        "create_service_account": st.booleans(),
        "namespace_selector": st.sampled_from(["", "  ", "team=platform", "env notin (prod)"]),
        "cluster": st.sampled_from(["home", "edge"]),
    },
)


@settings(max_examples=40, deadline=None)
@given(
    role_options=st.lists(_ROLE, max_size=5),
    review=st.sampled_from(
        [None, {"enabled": False}, {"enabled": True, "cluster": "home"}, {"enabled": True, "cluster": "edge"}]
    ),
)
def test_rendered_rbac_equals_broker_rules_for_any_roles(
    role_options: list[dict[str, Any]], review: dict[str, Any] | None
) -> None:
    roles = []
    for i, options in enumerate(role_options):
        role = {"name": f"role-{i}", "service_account": f"sa-{i}", "namespaces": ["ns-*"], **options}
        if role.get("mode") == "legacy-secret":
            role.pop("revocable", None)  # config.py refuses revocable legacy-secret roles
        roles.append({**role, "cluster": role.get("cluster", "home")})
    config: dict[str, Any] = {
        "clusters": [{"name": "home", "in_cluster": True}, {"name": "edge", "kubeconfig": "/k/edge.yaml"}],
        "roles": roles,
    }
    if review is not None:
        config["auth"] = {"kubernetes": review}
    cfg, cluster_role = config_and_cluster_role({"config": config})
    assert cluster_role["rules"] == expected_rules(cfg)


def test_single_cluster_roles_without_cluster_key_count_as_in_cluster() -> None:
    values = {
        "config": {"roles": [{"name": "r", "service_account": "r", "namespaces": ["a"], "revocable": True}]}
    }
    cfg, cluster_role = config_and_cluster_role(values)
    assert cluster_role["rules"] == broker_rules(cfg.roles)


def test_namespaced_rbac_splits_rules_into_roles_and_a_discovery_cluster_role() -> None:
    values = with_values(
        FULL, rbac={"create": True, "namespaced": ["staging", "legacy-ci"], "leaderElection": True}
    )
    values["config"] = copy.deepcopy(FULL["config"])
    values["config"]["auth"]["kubernetes"] = {"enabled": True, "cluster": "home"}
    # only literal namespaces: every one of them must be listed
    values["config"]["roles"] = [
        {**r, "namespaces": [n for n in r["namespaces"] if "*" not in n] or ["staging"]}
        for r in values["config"]["roles"]
        if r.get("cluster") == "home"
    ]
    docs = documents(values)
    cfg = config_of(values)
    expected = expected_rules(cfg)
    namespaced = [r for r in expected if "resources" in r and r != TOKEN_REVIEW_RULE]
    cluster_wide = [r for r in expected if r not in namespaced]
    assert TOKEN_REVIEW_RULE in cluster_wide
    cluster_role = only(docs, "ClusterRole")
    assert cluster_role["rules"] == cluster_wide
    roles = [d for d in docs if d["kind"] == "Role" and not d["metadata"]["name"].endswith("leader-election")]
    assert sorted(r["metadata"]["namespace"] for r in roles) == ["legacy-ci", "staging"]
    for role in roles:
        assert role["rules"] == namespaced
    bindings = [d for d in docs if d["kind"] == "RoleBinding" and d["roleRef"]["kind"] == "Role"]
    assert {b["metadata"]["namespace"] for b in bindings} >= {"staging", "legacy-ci"}


def test_namespaced_rbac_refuses_a_role_namespace_it_does_not_cover() -> None:
    values = {
        "rbac": {"namespaced": ["ci"]},
        "config": {"roles": [{"name": "x", "service_account": "x", "namespaces": ["staging"]}]},
    }
    with pytest.raises(helm().HelmRenderError, match='namespace "staging" of role "x"'):
        render(values)


def test_janitor_lease_is_in_the_release_namespace_and_only_it_is_granted() -> None:
    assert config_of(None).janitor.lease_namespace == NAMESPACE
    role = only(documents(None), "Role")
    assert role["metadata"]["namespace"] == NAMESPACE
    assert role["rules"] == [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create"]},
        {
            "apiGroups": ["coordination.k8s.io"],
            "resources": ["leases"],
            "resourceNames": [config_of(None).janitor.lease_name],
            "verbs": ["get", "update"],
        },
    ]
    renamed = {"config": {"janitor": {"lease_name": "broker-janitor", "lease_namespace": "ops"}}}
    assert config_of(renamed).janitor.lease_namespace == "ops"
    assert only(documents(renamed), "Role")["rules"][1]["resourceNames"] == ["broker-janitor"]
    for values in ({"rbac": {"leaderElection": False}}, {"config": {"janitor": {"enabled": False}}}):
        assert not [d for d in documents(values) if d["kind"] == "Role"]


def test_no_rbac_when_disabled() -> None:
    kinds = {d["kind"] for d in documents({"rbac": {"create": False}})}
    assert not kinds & {"ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}


# -- monitoring objects ---------------------------------------------------------------------------------------


def test_chart_copies_of_alerts_and_dashboard_are_identical_to_the_sources() -> None:
    for source, copy_in_chart in (
        (REPO / "alerts" / "kube-token-broker.rules.yaml", CHART / "files" / "kube-token-broker.rules.yaml"),
        (REPO / "dashboards" / "kube-token-broker.json", CHART / "files" / "kube-token-broker.json"),
    ):
        assert copy_in_chart.read_bytes() == source.read_bytes(), f"cp {source} {copy_in_chart}"


def test_prometheus_rule_serves_the_alerts_file() -> None:
    rule = only(documents(FULL), "PrometheusRule")
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"] == yaml.safe_load((REPO / "alerts" / "kube-token-broker.rules.yaml").read_text())


def test_dashboard_configmap_carries_the_dashboard_for_the_grafana_sidecar() -> None:
    configmap = only(documents(FULL), "ConfigMap", "tb-token-broker-dashboard")
    assert configmap["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert configmap["metadata"]["annotations"] == {"grafana_folder": "Platform"}
    dashboard = json.loads(configmap["data"]["kube-token-broker.json"])
    assert dashboard == json.loads((REPO / "dashboards" / "kube-token-broker.json").read_text())


def test_service_monitor_scrapes_the_metrics_port() -> None:
    monitor = only(documents(FULL), "ServiceMonitor")
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] == "metrics" and endpoint["path"] == "/metrics" and endpoint["interval"] == "15s"
    service = only(documents(FULL), "Service")
    assert "metrics" in {p["name"] for p in service["spec"]["ports"]}
    assert monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()


def test_network_policy_opens_only_the_two_ports() -> None:
    policy = only(documents(FULL), "NetworkPolicy")
    assert policy["spec"]["policyTypes"] == ["Ingress", "Egress"]
    ports = [rule["ports"][0]["port"] for rule in policy["spec"]["ingress"]]
    assert ports == ["api", "metrics"]
    api_rule = policy["spec"]["ingress"][0]
    assert api_rule["from"] == FULL["networkPolicy"]["apiFrom"]
    dns = policy["spec"]["egress"][0]
    assert {p["port"] for p in dns["ports"]} == {53}
    default = only(documents(None), "NetworkPolicy")
    assert default["spec"]["policyTypes"] == ["Ingress"]


def test_notes_name_the_secrets_the_pods_wait_for() -> None:
    text = notes(None)
    assert "Secret tb-kube-token-broker-tls" in text and "tb-kube-token-broker-client-ca" in text
    warn = notes({"replicaCount": 2})
    assert "WARNING" in warn and "config.audit" in warn
