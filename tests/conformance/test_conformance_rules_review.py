"""SelfSubjectRulesReview, and `kubectl auth can-i --list` (the real kubectl) on it, for a service account bound to
a Role, to a ClusterRole through a RoleBinding, and through a ClusterRoleBinding: what each grant lists."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from conformance_support import Pair, assert_same, status_of

RBAC = "/apis/rbac.authorization.k8s.io/v1"
GROUP = "rbac.authorization.k8s.io"
REVIEWS = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
ROLE_RULES = [
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
    {
        "apiGroups": [""],
        "resources": ["serviceaccounts/token"],
        "verbs": ["create"],
        "resourceNames": ["jenkins"],
    },
]
CLUSTER_ROLE_RULES = [
    {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["get", "update", "watch"]},
    {"apiGroups": ["", "apps"], "resources": ["pods", "pods/log"], "verbs": ["get"]},
]
CLUSTER_WIDE_RULES = [
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get", "list"]},
    {"nonResourceURLs": ["/metrics", "/logs/*"], "verbs": ["get"]},
]


def review(namespace: str | None) -> dict[str, Any]:
    spec = {} if namespace is None else {"namespace": namespace}
    return {"apiVersion": "authorization.k8s.io/v1", "kind": "SelfSubjectRulesReview", "spec": spec}


async def grant(pair: Pair, account: str, kind: str, role: str, *, cluster: bool = False) -> None:
    ns = pair.namespace
    name = f"{ns}-{account}" if cluster else account
    body = {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": GROUP, "kind": kind, "name": role},
        "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": ns}],
    }
    path = f"{RBAC}/clusterrolebindings" if cluster else f"{RBAC}/namespaces/{ns}/rolebindings"
    await pair.setup("POST", path, body)


async def tokens(pair: Pair, account: str) -> tuple[str, str]:
    ns = pair.namespace
    await pair.setup("POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": account}})
    sim, real = await pair.setup(
        "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/{account}/token", {"spec": {}}
    )
    return sim.token, real.token


async def granted_account(pair: Pair, how: str) -> tuple[str, str]:
    """A service account whose only grant (beyond every service account's) is `how`, and a token of each server."""
    ns = pair.namespace
    if how == "role":
        await pair.setup(
            "POST", f"{RBAC}/namespaces/{ns}/roles", {"metadata": {"name": "r"}, "rules": ROLE_RULES}
        )
        await grant(pair, "robot", "Role", "r")
    elif how == "clusterrole-in-namespace":
        name = f"{ns}-cr"
        await pair.setup(
            "POST", f"{RBAC}/clusterroles", {"metadata": {"name": name}, "rules": CLUSTER_ROLE_RULES}
        )
        await grant(pair, "robot", "ClusterRole", name)
    elif how == "clusterrole-cluster-wide":
        name = f"{ns}-crw"
        await pair.setup(
            "POST", f"{RBAC}/clusterroles", {"metadata": {"name": name}, "rules": CLUSTER_WIDE_RULES}
        )
        await grant(pair, "robot", "ClusterRole", name, cluster=True)
    return await tokens(pair, "robot")


def as_set(rules: list[dict[str, Any]]) -> list[str]:
    # the real server lists bindings in its informer's (map) order: compare the rules as a set
    return sorted(json.dumps(rule, sort_keys=True) for rule in rules)


GRANTS = ["none", "role", "clusterrole-in-namespace", "clusterrole-cluster-wide"]
# something kubectl lists for each grant
LISTED = {
    "none": "selfsubjectreviews.authentication.k8s.io",
    "role": "[jenkins]",
    "clusterrole-in-namespace": "leases.coordination.k8s.io",
    "clusterrole-cluster-wide": "[/logs/*]",
}


@pytest.mark.parametrize("how", GRANTS)
async def test_rules_review_lists_what_the_grant_gives(pair: Pair, how: str) -> None:
    sim_token, real_token = await granted_account(pair, how)
    body = review(pair.namespace)
    sim = await pair.sim.call("POST", REVIEWS, body, token=sim_token)
    real = await pair.real.call("POST", REVIEWS, body, token=real_token)
    assert (sim.status, real.status) == (201, 201), (sim.body, real.body)
    for answer in (sim, real):
        status = answer.body["status"]
        status["resourceRules"] = as_set(status["resourceRules"])
        status["nonResourceRules"] = as_set(status["nonResourceRules"])
    assert_same(sim.body, real.body)


@pytest.mark.parametrize("how", GRANTS)
async def test_kubectl_auth_can_i_list(pair: Pair, tmp_path: Path, how: str) -> None:
    sim_token, real_token = await granted_account(pair, how)
    args = ("auth", "can-i", "--list", "-n", pair.namespace)
    sim = await pair.sim.kubectl(tmp_path, *args, token=sim_token)
    real = await pair.real.kubectl(tmp_path, *args, token=real_token)
    assert (sim.returncode, real.returncode) == (0, 0), (sim.stderr, real.stderr)
    assert sim.stdout == real.stdout
    assert (sim.stderr, real.stderr) == ("", "")
    assert LISTED[how] in real.stdout


async def test_kubectl_auth_can_i_list_in_another_namespace(pair: Pair, tmp_path: Path) -> None:
    sim_token, real_token = await granted_account(pair, "role")
    args = ("auth", "can-i", "--list", "-n", "default")
    sim = await pair.sim.kubectl(tmp_path, *args, token=sim_token)
    real = await pair.real.kubectl(tmp_path, *args, token=real_token)
    assert (sim.returncode, sim.stdout) == (real.returncode, real.stdout)
    assert "secrets" not in real.stdout


async def test_a_user_with_an_unresolvable_grant(pair: Pair) -> None:
    user = (f"u-{pair.namespace}", ("devs",))
    body = {
        "metadata": {"name": "dangling"},
        "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": f"{pair.namespace}-never-made"},
        "subjects": [{"apiGroup": GROUP, "kind": "User", "name": user[0]}],
    }
    await pair.setup("POST", f"{RBAC}/namespaces/{pair.namespace}/rolebindings", body)
    sim, real = await pair.both("POST", REVIEWS, review(pair.namespace), user=user)
    assert (sim.status, real.status) == (201, 201)
    assert sim.body["status"]["evaluationError"] == real.body["status"]["evaluationError"]
    assert sim.body["status"]["incomplete"] is real.body["status"]["incomplete"] is False


async def test_a_review_without_a_namespace_is_a_bad_request(pair: Pair) -> None:
    sim, real = await pair.both("POST", REVIEWS, review(None), user=("someone", ()))
    assert_same(status_of(sim), status_of(real))
    assert real.status == 400
