"""RBAC escalation prevention in the simulator: the covering rules, the real message, and what kubectl sees when a
user without `escalate`/`bind` grants more than they hold; and SelfSubjectRulesReview (`kubectl auth can-i --list`)."""

from __future__ import annotations

from pathlib import Path

import pytest
from kubesim_support import admin, call, client, kubeconfig_for
from support.processes import kubectl

from kubesim import KubeSim
from kubesim.rbac_escalation import breakdown, compact, compact_string, uncovered

RBAC = "/apis/rbac.authorization.k8s.io/v1"


def test_a_rule_breaks_down_into_one_verb_resource_and_name_each() -> None:
    rule = {
        "apiGroups": ["", "apps"],
        "resources": ["pods"],
        "verbs": ["get", "list"],
        "resourceNames": ["a"],
    }
    assert breakdown(rule) == [
        {"apiGroups": [g], "resources": ["pods"], "verbs": [v], "resourceNames": ["a"]}
        for g in ("", "apps")
        for v in ("get", "list")
    ]
    assert breakdown({"nonResourceURLs": ["/a", "/b"], "verbs": ["get"]}) == [
        {"nonResourceURLs": ["/a"], "verbs": ["get"]},
        {"nonResourceURLs": ["/b"], "verbs": ["get"]},
    ]


@pytest.mark.parametrize(
    ("owner", "servant", "covered"),
    [
        (
            {"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]},
            {"apiGroups": ["x"], "resources": ["y"]},
            True,
        ),
        # a named grant does not cover every name, but any names of an unnamed grant are covered
        ({"resourceNames": ["a"]}, {}, False),
        ({}, {"resourceNames": ["a", "b"]}, True),
        ({"resourceNames": ["a"]}, {"resourceNames": ["a", "b"]}, False),
        # */status covers the status of every resource, never the resource itself
        ({"resources": ["*/status"]}, {"resources": ["pods/status"]}, True),
        ({"resources": ["*/status"]}, {"resources": ["pods"]}, False),
        ({"resources": ["pods"]}, {"resources": ["pods/log"]}, False),
    ],
)
def test_which_rules_cover(owner: dict[str, list[str]], servant: dict[str, list[str]], covered: bool) -> None:
    base = {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"]}
    missing = uncovered([{**base, **owner}], [{**base, **servant}])
    assert (missing == []) is covered


def test_urls_are_covered_by_prefix_wildcards() -> None:
    owner = [{"nonResourceURLs": ["/apis/*", "/version"], "verbs": ["get"]}]
    assert uncovered(owner, [{"nonResourceURLs": ["/apis/x/y", "/version"], "verbs": ["get"]}]) == []
    assert uncovered(owner, [{"nonResourceURLs": ["/version/"], "verbs": ["get"]}]) != []


def test_missing_rules_are_compacted_by_resource_and_printed_as_go_does() -> None:
    rules = [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "delete"]}]
    rules += [{"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a"]}]
    missing = uncovered([], rules)
    printed = sorted(compact_string(r) for r in compact(missing))
    assert printed == [
        '{APIGroups:[""], Resources:["pods"], ResourceNames:["a"], Verbs:["get"]}',
        '{APIGroups:[""], Resources:["secrets"], Verbs:["get" "delete"]}',
    ]


async def _rbac_writer(sim: KubeSim, user: str) -> None:
    """`user` may write roles and bindings in default, and read secrets there: nothing else."""
    for args in (
        ("create", "role", "rbac-writer", "--verb=create,update,get", "--resource=roles,rolebindings"),
        ("create", "role", "secret-reader", "--verb=get,list", "--resource=secrets"),
        ("create", "rolebinding", "writer", "--role=rbac-writer", f"--user={user}"),
        ("create", "rolebinding", "reader", "--role=secret-reader", f"--user={user}"),
        ("create", "role", "deleter", "--verb=delete", "--resource=secrets"),
    ):
        result = await admin(sim, *args)
        assert result.returncode == 0, result.stderr


async def test_kubectl_create_role_beyond_what_is_held(kubesim: KubeSim, tmp_path: Path) -> None:
    await _rbac_writer(kubesim, "hank")
    config = kubeconfig_for(kubesim, tmp_path, "hank", ("devs",))
    within = await kubectl(config, "create", "role", "mine", "--verb=get", "--resource=secrets")
    assert within.returncode == 0, within.stderr
    beyond = await kubectl(config, "create", "role", "more", "--verb=get,delete", "--resource=secrets,pods")
    assert beyond.returncode == 1
    assert beyond.stderr == (
        'Error from server (Forbidden): roles.rbac.authorization.k8s.io "more" is forbidden: user "hank" '
        '(groups=["devs" "system:authenticated"]) is attempting to grant RBAC permissions not currently held:\n'
        '{APIGroups:[""], Resources:["pods"], Verbs:["get" "delete"]}\n'
        '{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}\n'
    )


async def test_binding_needs_the_rules_or_bind(kubesim: KubeSim, tmp_path: Path) -> None:
    await _rbac_writer(kubesim, "ida")
    config = kubeconfig_for(kubesim, tmp_path, "ida")
    own = await kubectl(config, "create", "rolebinding", "share", "--role=secret-reader", "--user=joe")
    assert own.returncode == 0, own.stderr
    refused = await kubectl(config, "create", "rolebinding", "grant", "--role=deleter", "--user=joe")
    assert refused.returncode == 1
    assert 'rolebindings.rbac.authorization.k8s.io "grant" is forbidden: user "ida"' in refused.stderr
    assert '{APIGroups:[""], Resources:["secrets"], Verbs:["delete"]}' in refused.stderr
    bind = ("create", "role", "binder", "--verb=bind", "--resource=roles", "--resource-name=deleter")
    assert (await admin(kubesim, *bind)).returncode == 0
    assert (
        await admin(kubesim, "create", "rolebinding", "ida-binds", "--role=binder", "--user=ida")
    ).returncode == 0
    allowed = await kubectl(config, "create", "rolebinding", "grant", "--role=deleter", "--user=joe")
    assert allowed.returncode == 0, allowed.stderr


async def test_escalate_and_system_masters_skip_the_check(kubesim: KubeSim, tmp_path: Path) -> None:
    await _rbac_writer(kubesim, "kim")
    wide = ("create", "clusterrole", "wide", "--verb=*", "--resource=*")
    assert (await admin(kubesim, *wide)).returncode == 0
    config = kubeconfig_for(kubesim, tmp_path, "kim")
    refused = await kubectl(config, "create", "role", "all", "--verb=*", "--resource=*")
    assert refused.returncode == 1
    escalate = ("create", "role", "escalator", "--verb=escalate", "--resource=roles")
    assert (await admin(kubesim, *escalate)).returncode == 0
    assert (
        await admin(kubesim, "create", "rolebinding", "kim-esc", "--role=escalator", "--user=kim")
    ).returncode == 0
    allowed = await kubectl(config, "create", "role", "all", "--verb=*", "--resource=*")
    assert allowed.returncode == 0, allowed.stderr


async def test_a_binding_to_a_missing_role_is_not_found_naming_the_request(kubesim: KubeSim) -> None:
    await _rbac_writer(kubesim, "lee")
    body = {
        "metadata": {"name": "b"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "missing"},
        "subjects": [{"kind": "User", "name": "x"}],
    }
    async with client(kubesim, "lee", ()) as http:
        code, answer, _ = await call(http, "POST", f"{RBAC}/namespaces/default/rolebindings", json=body)
    assert code == 404
    assert answer["message"] == 'rolebindings.rbac.authorization.k8s.io "missing" not found'


async def test_rules_review_needs_a_namespace_and_reports_missing_roles(kubesim: KubeSim) -> None:
    binding = {
        "metadata": {"name": "dangling"},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": "gone"},
        "subjects": [{"kind": "User", "name": "mo"}],
    }
    path = "/apis/authorization.k8s.io/v1/selfsubjectrulesreviews"
    async with client(kubesim) as http:
        assert (await call(http, "POST", f"{RBAC}/namespaces/default/rolebindings", json=binding))[0] == 201
    async with client(kubesim, "mo", ()) as http:
        bad, body, _ = await call(http, "POST", path, json={"spec": {}})
        code, review, _ = await call(
            http, "POST", path, json={"metadata": {"name": "x"}, "spec": {"namespace": "default"}}
        )
    assert (bad, body["message"]) == (400, "no namespace on request")
    assert code == 201
    assert (review["metadata"], review["spec"]) == ({}, {})
    assert review["status"]["evaluationError"] == 'role.rbac.authorization.k8s.io "gone" not found'
    assert {
        "verbs": ["create"],
        "apiGroups": ["authentication.k8s.io"],
        "resources": ["selfsubjectreviews"],
    } in (review["status"]["resourceRules"])


async def test_can_i_list_as_admin_and_always_allow(
    kubesim: KubeSim, kubesim_allow: KubeSim, tmp_path: Path
) -> None:
    assert kubesim.admin_kubeconfig is not None
    listed = await kubectl(kubesim.admin_kubeconfig, "auth", "can-i", "--list")
    assert listed.returncode == 0, listed.stderr
    # system:masters holds cluster-admin through its binding, listed with the discovery grants
    assert ["*.*", "[]", "[]", "[*]"] in rows(listed.stdout)
    assert ["[*]", "[]", "[*]"] in rows(listed.stdout)
    anyone = kubeconfig_for(kubesim_allow, tmp_path, "nobody")
    allowed = await kubectl(anyone, "auth", "can-i", "--list")
    assert rows(allowed.stdout)[1:] == [["*.*", "[]", "[]", "[*]"], ["[*]", "[]", "[*]"]]


def rows(table: str) -> list[list[str]]:
    return [line.split() for line in table.splitlines()]
