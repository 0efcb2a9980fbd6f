"""RBAC escalation prevention: a user who may write Roles and bindings creates and updates them within and beyond
the permissions they hold, with and without `escalate`/`bind` (and their resourceNames), at namespace and cluster
scope. Codes and messages compared (the multi-line list of missing rules included)."""

from __future__ import annotations

from typing import Any

import pytest
from conformance_support import Answer, Pair, assert_same, status_of

RBAC = "/apis/rbac.authorization.k8s.io/v1"
GROUP = "rbac.authorization.k8s.io"
# what the requester may always do in the test's namespace: write roles and bindings, read secrets, read one
# configmap by name; and, cluster-wide, write cluster roles and cluster role bindings and read namespaces
HELD_RULES = [
    {
        "apiGroups": [GROUP],
        "resources": ["roles", "rolebindings"],
        "verbs": ["create", "update", "patch", "get"],
    },
    {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "list"]},
    {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["cm1"]},
]
CLUSTER_HELD_RULES = [
    {
        "apiGroups": [GROUP],
        "resources": ["clusterroles", "clusterrolebindings"],
        "verbs": ["create", "update", "get"],
    },
    {"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]},
]
BEYOND_RULES = [
    {"apiGroups": ["", "apps"], "resources": ["secrets", "configmaps"], "verbs": ["get", "delete", "watch"]},
    {"apiGroups": [""], "resources": ["pods"], "verbs": ["get"], "resourceNames": ["a", "b"]},
    {"apiGroups": [""], "resources": ["pods/log", "pods/exec"], "verbs": ["get", "get"]},
]


class Scene:
    """The requester (a user of this test's own, so cluster-wide grants of other tests never apply) and the
    names of this test's cluster-scoped objects."""

    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.ns = pair.namespace
        self.user = f"u-{self.ns}"
        self.who = (self.user, ("devs", "qa"))

    def cluster_name(self, name: str) -> str:
        return f"{self.ns}-{name}"

    def roles(self) -> str:
        return f"{RBAC}/namespaces/{self.ns}/roles"

    def rolebindings(self) -> str:
        return f"{RBAC}/namespaces/{self.ns}/rolebindings"

    async def admin_role(self, name: str, rules: list[dict[str, Any]]) -> None:
        await self.pair.setup("POST", self.roles(), role(name, rules))

    async def admin_cluster_role(self, name: str, rules: list[dict[str, Any]]) -> None:
        await self.pair.setup("POST", f"{RBAC}/clusterroles", role(name, rules, kind="ClusterRole"))

    async def grant(self, kind: str, name: str, *, cluster: bool = False) -> None:
        """Bind the requester to a Role/ClusterRole, in the namespace or (cluster=True) cluster-wide."""
        if cluster:
            body = binding(self.cluster_name(f"grant-{name}"), kind, name, self.user, cluster=True)
            await self.pair.setup("POST", f"{RBAC}/clusterrolebindings", body)
        else:
            await self.pair.setup(
                "POST", self.rolebindings(), binding(f"grant-{name}", kind, name, self.user)
            )

    async def held(self) -> None:
        await self.admin_role("held", HELD_RULES)
        await self.grant("Role", "held")
        name = self.cluster_name("cluster-held")
        await self.admin_cluster_role(name, CLUSTER_HELD_RULES)
        await self.grant("ClusterRole", name, cluster=True)

    async def as_user(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[Answer, Answer]:
        return await self.pair.both(method, path, body, user=self.who, **kwargs)


def role(name: str, rules: list[dict[str, Any]], kind: str = "Role") -> dict[str, Any]:
    return {"apiVersion": f"{GROUP}/v1", "kind": kind, "metadata": {"name": name}, "rules": rules}


def binding(name: str, kind: str, role_name: str, user: str, *, cluster: bool = False) -> dict[str, Any]:
    return {
        "apiVersion": f"{GROUP}/v1",
        "kind": "ClusterRoleBinding" if cluster else "RoleBinding",
        "metadata": {"name": name},
        "roleRef": {"apiGroup": GROUP, "kind": kind, "name": role_name},
        "subjects": [{"apiGroup": GROUP, "kind": "User", "name": user}],
    }


def assert_same_answer(sim: Answer, real: Answer, what: str = "") -> None:
    assert sim.status == real.status, f"{what}: sim {sim.status} {sim.body} / real {real.status} {real.body}"
    if real.status >= 400:
        assert_same(status_of(sim), status_of(real), what=what)
    else:
        assert_same(sim.body, real.body, what=what)


@pytest.fixture
async def scene(pair: Pair) -> Scene:
    scene = Scene(pair)
    await scene.held()
    return scene


ROLE_CASES = {
    "within": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["list", "get"]}],
    "within-by-name": [
        {"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"], "resourceNames": ["s1"]}
    ],
    "named-subset": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["cm1"]}
    ],
    "beyond": BEYOND_RULES,
    "beyond-names": [
        {"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"], "resourceNames": ["cm1", "cm2"]}
    ],
    "all-names-of-a-named-grant": [{"apiGroups": [""], "resources": ["configmaps"], "verbs": ["get"]}],
    "wildcards": [{"apiGroups": ["*"], "resources": ["*"], "verbs": ["*"]}],
    "non-resource-url": [{"nonResourceURLs": ["/metrics"], "verbs": ["get"]}],
    "cluster-scope-only": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
}


@pytest.mark.parametrize("rules", list(ROLE_CASES.values()), ids=list(ROLE_CASES))
async def test_creating_a_role(scene: Scene, rules: list[dict[str, Any]]) -> None:
    sim, real = await scene.as_user("POST", scene.roles(), role("made", rules))
    assert_same_answer(sim, real, "POST role")


CLUSTER_ROLE_CASES = {
    "within": [{"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]}],
    # held through a RoleBinding in one namespace only: not at cluster scope
    "namespaced-grant-only": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}],
    # the bootstrap discovery roles every authenticated user holds
    "discovery-urls": [{"nonResourceURLs": ["/api", "/apis/*", "/version"], "verbs": ["get"]}],
    "urls-beyond": [{"nonResourceURLs": ["/metrics", "/api/*"], "verbs": ["get", "post"]}],
}


@pytest.mark.parametrize("rules", list(CLUSTER_ROLE_CASES.values()), ids=list(CLUSTER_ROLE_CASES))
async def test_creating_a_cluster_role(scene: Scene, rules: list[dict[str, Any]]) -> None:
    body = role(scene.cluster_name("made"), rules, kind="ClusterRole")
    sim, real = await scene.as_user("POST", f"{RBAC}/clusterroles", body)
    assert_same_answer(sim, real, "POST clusterrole")


async def test_a_name_generated_role_beyond_is_forbidden_without_a_name(scene: Scene) -> None:
    body = role("", BEYOND_RULES)
    body["metadata"] = {"generateName": "gen-"}
    sim, real = await scene.as_user("POST", scene.roles(), body)
    assert_same_answer(sim, real)
    assert real.status == 403


async def test_escalate_allows_any_role(scene: Scene) -> None:
    await scene.admin_role(
        "escalator", [{"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["escalate"]}]
    )
    await scene.grant("Role", "escalator")
    sim, real = await scene.as_user("POST", scene.roles(), role("made", BEYOND_RULES))
    assert_same_answer(sim, real)
    assert real.status == 201


async def test_escalate_restricted_by_name_allows_updates_of_that_role_only(scene: Scene) -> None:
    named = [{"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["escalate"], "resourceNames": ["made"]}]
    await scene.admin_role("escalator", named)
    await scene.grant("Role", "escalator")
    # a create names no object: resourceNames never match it
    sim, real = await scene.as_user("POST", scene.roles(), role("made", BEYOND_RULES))
    assert_same_answer(sim, real, "create")
    assert real.status == 403
    await scene.admin_role("made", [])
    sim, real = await scene.as_user("PUT", f"{scene.roles()}/made", role("made", BEYOND_RULES))
    assert_same_answer(sim, real, "update of the named role")
    assert real.status == 200
    await scene.admin_role("other", [])
    sim, real = await scene.as_user("PUT", f"{scene.roles()}/other", role("other", BEYOND_RULES))
    assert_same_answer(sim, real, "update of another role")
    assert real.status == 403


async def test_escalate_on_cluster_roles_does_not_cover_roles(scene: Scene) -> None:
    name = scene.cluster_name("escalator")
    escalate = [{"apiGroups": [GROUP], "resources": ["clusterroles"], "verbs": ["escalate"]}]
    await scene.admin_cluster_role(name, escalate)
    await scene.grant("ClusterRole", name, cluster=True)
    sim, real = await scene.as_user("POST", scene.roles(), role("made", BEYOND_RULES))
    assert_same_answer(sim, real, "a Role")
    body = role(scene.cluster_name("made"), BEYOND_RULES, kind="ClusterRole")
    sim, real = await scene.as_user("POST", f"{RBAC}/clusterroles", body)
    assert_same_answer(sim, real, "a ClusterRole")
    assert real.status == 201


async def test_updating_a_role_beyond_and_changing_only_finalizers(scene: Scene) -> None:
    await scene.admin_role("big", BEYOND_RULES)
    path = f"{scene.roles()}/big"
    labelled = {"metadata": {"labels": {"team": "a"}}}
    merge = {"Content-Type": "application/merge-patch+json"}
    sim, real = await scene.as_user("PATCH", path, labelled, headers=merge)
    assert_same_answer(sim, real, "a label on a role beyond the requester's rights")
    assert real.status == 403
    # finalizers (and ownerReferences) are the garbage collector's fields: changing only them needs no rights
    sim, real = await scene.as_user(
        "PATCH", path, {"metadata": {"finalizers": ["example.com/keep"]}}, headers=merge
    )
    assert (sim.status, real.status) == (200, 200), (sim.body, real.body)
    assert sim.body["metadata"]["finalizers"] == real.body["metadata"]["finalizers"]


async def test_adding_a_rule_by_merge_patch(scene: Scene) -> None:
    await scene.admin_role("small", [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get"]}])
    patch = {"rules": [{"apiGroups": [""], "resources": ["secrets"], "verbs": ["get", "delete"]}]}
    sim, real = await scene.as_user(
        "PATCH", f"{scene.roles()}/small", patch, headers={"Content-Type": "application/merge-patch+json"}
    )
    assert_same_answer(sim, real)
    assert real.status == 403


async def _big_roles(scene: Scene) -> None:
    await scene.admin_role("big", BEYOND_RULES)
    await scene.admin_cluster_role(scene.cluster_name("big"), BEYOND_RULES)


@pytest.mark.parametrize(
    ("kind", "name"),
    [("Role", "held"), ("Role", "big"), ("ClusterRole", "big"), ("ClusterRole", "cluster-held")],
)
async def test_binding_in_a_namespace(scene: Scene, kind: str, name: str) -> None:
    await _big_roles(scene)
    name = scene.cluster_name(name) if kind == "ClusterRole" else name
    sim, real = await scene.as_user("POST", scene.rolebindings(), binding("made", kind, name, "someone"))
    assert_same_answer(sim, real)


@pytest.mark.parametrize("names", [None, ["big"], ["other"]], ids=["any", "this-role", "another-role"])
async def test_bind_allows_binding_a_role_beyond(scene: Scene, names: list[str] | None) -> None:
    await _big_roles(scene)
    rule: dict[str, Any] = {"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["bind"]}
    if names:
        rule["resourceNames"] = names
    await scene.admin_role("binder", [rule])
    await scene.grant("Role", "binder")
    sim, real = await scene.as_user("POST", scene.rolebindings(), binding("made", "Role", "big", "someone"))
    assert_same_answer(sim, real)
    assert real.status == (403 if names == ["other"] else 201)


async def test_bind_on_roles_does_not_cover_cluster_roles(scene: Scene) -> None:
    await _big_roles(scene)
    await scene.admin_role("binder", [{"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["bind"]}])
    await scene.grant("Role", "binder")
    body = binding("made", "ClusterRole", scene.cluster_name("big"), "someone")
    sim, real = await scene.as_user("POST", scene.rolebindings(), body)
    assert_same_answer(sim, real)
    assert real.status == 403


@pytest.mark.parametrize("grant", ["none", "namespaced-bind", "cluster-bind"])
async def test_cluster_role_binding(scene: Scene, grant: str) -> None:
    await _big_roles(scene)
    big = scene.cluster_name("big")
    bind = [{"apiGroups": [GROUP], "resources": ["clusterroles"], "verbs": ["bind"], "resourceNames": [big]}]
    if grant == "namespaced-bind":
        await scene.admin_role("binder", bind)
        await scene.grant("Role", "binder")
    elif grant == "cluster-bind":
        name = scene.cluster_name("binder")
        await scene.admin_cluster_role(name, bind)
        await scene.grant("ClusterRole", name, cluster=True)
    body = binding(scene.cluster_name("made"), "ClusterRole", big, "someone", cluster=True)
    sim, real = await scene.as_user("POST", f"{RBAC}/clusterrolebindings", body)
    assert_same_answer(sim, real)
    assert real.status == (201 if grant == "cluster-bind" else 403)


async def test_a_cluster_role_binding_within_what_is_held_cluster_wide(scene: Scene) -> None:
    held = scene.cluster_name("cluster-held")
    body = binding(scene.cluster_name("made"), "ClusterRole", held, "someone", cluster=True)
    sim, real = await scene.as_user("POST", f"{RBAC}/clusterrolebindings", body)
    assert_same_answer(sim, real)
    assert real.status == 201


@pytest.mark.parametrize("bind", [False, True], ids=["without-bind", "with-bind"])
async def test_binding_a_missing_role(scene: Scene, bind: bool) -> None:
    if bind:
        await scene.admin_role("binder", [{"apiGroups": [GROUP], "resources": ["roles"], "verbs": ["bind"]}])
        await scene.grant("Role", "binder")
    sim, real = await scene.as_user(
        "POST", scene.rolebindings(), binding("made", "Role", "missing", "someone")
    )
    assert_same_answer(sim, real)


async def test_a_role_ref_of_an_unknown_kind(scene: Scene) -> None:
    sim, real = await scene.as_user("POST", scene.rolebindings(), binding("made", "Foo", "held", "someone"))
    assert_same_answer(sim, real, "as the user")
    sim, real = await scene.pair.both("POST", scene.rolebindings(), binding("made", "Foo", "held", "someone"))
    assert_same_answer(sim, real, "as system:masters")


async def test_updating_a_binding_to_another_subject(scene: Scene) -> None:
    await _big_roles(scene)
    await scene.pair.setup("POST", scene.rolebindings(), binding("made", "Role", "big", "someone"))
    sim, real = await scene.as_user(
        "PUT", f"{scene.rolebindings()}/made", binding("made", "Role", "big", "other")
    )
    assert_same_answer(sim, real)
    assert real.status == 403


async def test_unresolvable_grants_of_the_requester_are_named(scene: Scene) -> None:
    await scene.grant("ClusterRole", scene.cluster_name("never-made"))
    sim, real = await scene.as_user("POST", scene.roles(), role("made", BEYOND_RULES))
    assert_same_answer(sim, real)
    assert "resolution errors" in real.body["message"]


async def test_a_service_account_requester(scene: Scene) -> None:
    ns = scene.ns
    await scene.pair.setup(
        "POST", f"/api/v1/namespaces/{ns}/serviceaccounts", {"metadata": {"name": "robot"}}
    )
    robot = binding("robot-held", "Role", "held", "")
    robot["subjects"] = [{"kind": "ServiceAccount", "name": "robot", "namespace": ns}]
    await scene.pair.setup("POST", scene.rolebindings(), robot)
    sim_token, real_token = await scene.pair.setup(
        "POST", f"/api/v1/namespaces/{ns}/serviceaccounts/robot/token", {"spec": {}}
    )
    answers = []
    for peer, token in zip(scene.pair.peers, (sim_token.token, real_token.token), strict=True):
        answers.append(await peer.call("POST", scene.roles(), role("made", BEYOND_RULES), token=token))
    assert_same_answer(answers[0], answers[1])
    assert answers[1].status == 403
