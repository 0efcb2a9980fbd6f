"""Owner references and the garbage collector: what kube-controller-manager's collector deletes, keeps and rewrites
(dependents of a deleted owner, dangling and cross-namespace references, a namespaced owner of a cluster-scoped
dependent, kinds it cannot resolve, several owners), deletion with propagationPolicy Foreground and Orphan, and
finalizers. The real collector runs asynchronously: every wait is bounded."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Any

import pytest
from conformance_support import Answer, Pair, Peer, assert_same, status_of

RBAC = "/apis/rbac.authorization.k8s.io/v1"
GHOST_UID = "0b6d3c55-3c1e-4a4f-9c55-6a1f0f8a7d21"
MERGE = {"Content-Type": "application/merge-patch+json"}


class Scene:
    def __init__(self, pair: Pair) -> None:
        self.pair = pair
        self.ns = pair.namespace

    def path(self, kind: str, name: str = "", namespace: str | None = None) -> str:
        ns = namespace or self.ns
        base = {
            "secret": f"/api/v1/namespaces/{ns}/secrets",
            "sa": f"/api/v1/namespaces/{ns}/serviceaccounts",
            "role": f"{RBAC}/namespaces/{ns}/roles",
            "rolebinding": f"{RBAC}/namespaces/{ns}/rolebindings",
            "clusterrole": f"{RBAC}/clusterroles",
            "clusterrolebinding": f"{RBAC}/clusterrolebindings",
        }[kind]
        return f"{base}/{name}" if name else base

    async def owner(self, name: str, kind: str = "secret", **meta: Any) -> dict[str, dict[str, str]]:
        """An owner on each server; its owner reference there, by peer name."""
        refs = {}
        body = {"metadata": {"name": name, **meta}}
        if kind == "clusterrole":
            body["rules"] = []
        for peer in self.pair.peers:
            answer = await peer.call("POST", self.path(kind), body)
            assert answer.status == 201, answer.body
            refs[peer.name] = {
                "apiVersion": answer.body["apiVersion"],
                "kind": answer.body["kind"],
                "name": name,
                "uid": answer.body["metadata"]["uid"],
            }
        return refs

    async def dependent(
        self,
        kind: str,
        name: str,
        refs: list[dict[str, dict[str, str]] | dict[str, str]],
        namespace: str | None = None,
    ) -> None:
        """A dependent on each server naming the owners given (per-peer references, or one for both)."""
        for peer in self.pair.peers:
            owner_refs = [r.get(peer.name, r) if isinstance(r.get(peer.name), dict) else r for r in refs]
            body: dict[str, Any] = {"metadata": {"name": name, "ownerReferences": owner_refs}}
            if kind == "role":
                body["rules"] = []
            if kind in ("rolebinding", "clusterrolebinding"):
                body["roleRef"] = {
                    "apiGroup": "rbac.authorization.k8s.io",
                    "kind": "ClusterRole",
                    "name": "view",
                }
            answer = await peer.call("POST", self.path(kind, namespace=namespace), body)
            assert answer.status == 201, (peer.name, answer.body)

    async def get(self, kind: str, name: str, namespace: str | None = None) -> tuple[Answer, Answer]:
        return await self.pair.both("GET", self.path(kind, name, namespace))


async def until(peer: Peer, check: Callable[[], Awaitable[bool]], what: str, timeout: float = 30.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not await check():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{peer.name}: not within {timeout} s: {what}")
        await asyncio.sleep(0.1)


async def gone(scene: Scene, kind: str, name: str, namespace: str | None = None) -> None:
    """Wait (bounded) until the object is gone from both servers."""
    for peer in scene.pair.peers:

        async def missing(peer: Peer = peer) -> bool:
            return (await peer.call("GET", scene.path(kind, name, namespace))).status == 404

        await until(peer, missing, f"{kind} {name} collected")


@pytest.fixture
async def scene(pair: Pair) -> Scene:
    return Scene(pair)


async def test_dependents_of_a_deleted_owner_are_collected(scene: Scene) -> None:
    owner = await scene.owner("owner")
    for kind in ("sa", "role", "rolebinding"):
        await scene.dependent(kind, "dep", [owner])
    sim, real = await scene.pair.both("DELETE", scene.path("secret", "owner"))
    assert_same(sim.body, real.body)
    for kind in ("sa", "role", "rolebinding"):
        await gone(scene, kind, "dep")


async def test_a_dependent_of_an_owner_that_never_existed_is_collected(scene: Scene) -> None:
    ghost = {"apiVersion": "v1", "kind": "Secret", "name": "ghost", "uid": GHOST_UID}
    await scene.dependent("sa", "orphaned", [ghost])
    await gone(scene, "sa", "orphaned")


async def test_an_owner_with_the_same_name_and_another_uid_is_absent(scene: Scene) -> None:
    await scene.owner("owner")
    await scene.dependent(
        "sa", "dep", [{"apiVersion": "v1", "kind": "Secret", "name": "owner", "uid": GHOST_UID}]
    )
    await gone(scene, "sa", "dep")


async def test_an_owner_in_another_namespace_is_absent(scene: Scene) -> None:
    other = f"{scene.ns}-b"
    await scene.pair.setup("POST", "/api/v1/namespaces", {"metadata": {"name": other}})
    owner = await scene.owner("owner")
    await scene.dependent("sa", "elsewhere", [owner], namespace=other)
    await gone(scene, "sa", "elsewhere", namespace=other)
    sim, real = await scene.get("secret", "owner")
    assert (sim.status, real.status) == (200, 200)


async def _collected_sibling(scene: Scene, owner: dict[str, dict[str, str]], name: str) -> None:
    """A namespaced dependent of the same owner, collected: proof that the collector has handled the deletion."""
    await scene.dependent("sa", name, [owner])


async def test_a_namespaced_owner_cannot_own_a_cluster_scoped_dependent(scene: Scene) -> None:
    owner = await scene.owner("owner")
    name = f"{scene.ns}-crb"
    await scene.dependent("clusterrolebinding", name, [owner])
    await _collected_sibling(scene, owner, "sibling")
    await scene.pair.setup("DELETE", scene.path("secret", "owner"))
    await gone(scene, "sa", "sibling")
    await asyncio.sleep(1)  # the real collector has had its chance to get it wrong
    sim, real = await scene.get("clusterrolebinding", name)
    assert (sim.status, real.status) == (200, 200)
    assert_same(sim.body["metadata"].get("ownerReferences"), real.body["metadata"].get("ownerReferences"))
    await scene.pair.setup("DELETE", scene.path("clusterrolebinding", name))


async def test_a_dependent_naming_a_kind_nobody_serves_is_kept(scene: Scene) -> None:
    owner = await scene.owner("owner")
    widget = {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": GHOST_UID}
    await scene.dependent("sa", "kept", [widget])
    await _collected_sibling(scene, owner, "sibling")
    await scene.pair.setup("DELETE", scene.path("secret", "owner"))
    await gone(scene, "sa", "sibling")
    await asyncio.sleep(1)
    sim, real = await scene.get("sa", "kept")
    assert (sim.status, real.status) == (200, 200)


async def test_a_dependent_with_an_owner_left_loses_the_absent_reference_only(scene: Scene) -> None:
    first, second = await scene.owner("first"), await scene.owner("second")
    await scene.dependent("sa", "shared", [first, second])
    await scene.pair.setup("DELETE", scene.path("secret", "first"))
    for peer in scene.pair.peers:

        async def one_owner(peer: Peer = peer) -> bool:
            body = (await peer.call("GET", scene.path("sa", "shared"))).body
            return len(body["metadata"].get("ownerReferences") or []) == 1

        await until(peer, one_owner, "the absent owner's reference removed")
    sim, real = await scene.get("sa", "shared")
    assert_same(sim.body["metadata"]["ownerReferences"], real.body["metadata"]["ownerReferences"])
    assert real.body["metadata"]["ownerReferences"][0]["name"] == "second"


async def test_a_cluster_scoped_owner_of_namespaced_dependents(scene: Scene) -> None:
    name = f"{scene.ns}-owner"
    owner = await scene.owner(name, kind="clusterrole")
    await scene.dependent("role", "dep", [owner])
    await scene.dependent("sa", "dep", [owner])
    await scene.pair.setup("DELETE", scene.path("clusterrole", name))
    await gone(scene, "role", "dep")
    await gone(scene, "sa", "dep")


async def test_foreground_deletion_waits_for_blocking_dependents(scene: Scene) -> None:
    owner = await scene.owner("owner")
    blocking = {k: {**v, "blockOwnerDeletion": True} for k, v in owner.items()}
    await scene.dependent("sa", "blocking", [blocking])
    await scene.dependent("role", "free", [owner])
    sim, real = await scene.pair.both(
        "DELETE", scene.path("secret", "owner"), {"propagationPolicy": "Foreground"}
    )
    assert (sim.status, real.status) == (200, 200)
    assert_same(sim.body, real.body)
    assert real.body["metadata"]["finalizers"] == ["foregroundDeletion"]
    for kind, name in (("sa", "blocking"), ("role", "free"), ("secret", "owner")):
        await gone(scene, kind, name)


async def test_orphan_deletion_keeps_the_dependents_without_the_reference(scene: Scene) -> None:
    owner = await scene.owner("owner")
    await scene.dependent("sa", "left", [owner])
    sim, real = await scene.pair.both(
        "DELETE", scene.path("secret", "owner"), {"propagationPolicy": "Orphan"}
    )
    assert (sim.status, real.status) == (200, 200)
    assert_same(sim.body, real.body)
    await gone(scene, "secret", "owner")
    sim, real = await scene.get("sa", "left")
    assert (sim.status, real.status) == (200, 200)
    assert "ownerReferences" not in real.body["metadata"]
    assert_same(sim.body, real.body)


@pytest.mark.parametrize(
    "options",
    [{"propagationPolicy": "Sideways"}, {"propagationPolicy": "Orphan", "orphanDependents": True}],
    ids=["unknown-policy", "both-set"],
)
async def test_bad_delete_options(scene: Scene, options: dict[str, Any]) -> None:
    await scene.owner("owner")
    sim, real = await scene.pair.both("DELETE", scene.path("secret", "owner"), options)
    assert_same(status_of(sim), status_of(real))
    assert real.status == 422


async def test_finalizers_keep_a_deleted_object_until_removed(scene: Scene) -> None:
    await scene.owner("held", finalizers=["example.com/keep"])
    path = scene.path("secret", "held")
    steps: list[tuple[str, Any, dict[str, str] | None]] = [
        ("DELETE", None, None),
        ("DELETE", None, None),
        ("PATCH", {"metadata": {"finalizers": ["example.com/keep", "example.com/more"]}}, MERGE),
        ("PATCH", {"metadata": {"labels": {"a": "b"}}}, MERGE),
        ("DELETE", {"orphanDependents": False}, None),
        ("PATCH", {"metadata": {"finalizers": None}}, MERGE),
        ("GET", None, None),
    ]
    for method, body, headers in steps:
        sim, real = await scene.pair.both(method, path, body, headers=headers)
        assert sim.status == real.status, (method, body, sim.body, real.body)
        if real.status >= 400:
            assert_same(status_of(sim), status_of(real), what=f"{method} {body}")
        else:
            assert_same(sim.body, real.body, what=f"{method} {body}")


@pytest.mark.parametrize(
    "meta",
    [
        {"finalizers": ["nope", "orphan", "foregroundDeletion"]},
        {"finalizers": ["Bad Name/x"]},
        {"ownerReferences": [{"apiVersion": "v1", "kind": "Secret", "name": "", "uid": ""}]},
        {"ownerReferences": [{"apiVersion": "", "kind": "", "name": "x", "uid": GHOST_UID}]},
        {
            "ownerReferences": [
                {"apiVersion": "v1", "kind": "Secret", "name": "a", "uid": GHOST_UID, "controller": True},
                {"apiVersion": "v1", "kind": "Secret", "name": "b", "uid": GHOST_UID, "controller": True},
            ]
        },
    ],
    ids=[
        "conflicting-finalizers",
        "unqualified-finalizer",
        "empty-reference",
        "no-version-no-kind",
        "two-controllers",
    ],
)
async def test_invalid_finalizers_and_references(scene: Scene, meta: dict[str, Any]) -> None:
    sim, real = await scene.pair.both("POST", scene.path("sa"), {"metadata": {"name": "bad", **meta}})
    assert_same(status_of(sim), status_of(real))
    assert real.status == 422
