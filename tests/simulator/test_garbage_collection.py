"""Owner references, the simulator's garbage collector, finalizers and propagationPolicy on DELETE — the store driven
directly (the collector acts at once outside an event loop) and over HTTP."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from kubesim_support import call, client

from kubesim import KubeSim
from kubesim.deletion import Propagation, delete
from kubesim.garbage_collector import install
from kubesim.kinds import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLES, SECRETS, SERVICEACCOUNTS
from kubesim.state import Obj, ResourceType, Store
from kubesim.status import ApiError

KINDS = [SECRETS, SERVICEACCOUNTS, ROLES, CLUSTERROLES, CLUSTERROLEBINDINGS]
GHOST = "0b6d3c55-3c1e-4a4f-9c55-6a1f0f8a7d21"


def ref(obj: Obj, **extra: Any) -> dict[str, Any]:
    return {
        "apiVersion": obj["apiVersion"],
        "kind": obj["kind"],
        "name": obj["metadata"]["name"],
        "uid": obj["metadata"]["uid"],
        **extra,
    }


def make(
    store: Store, rtype: ResourceType, name: str, *owners: dict[str, Any], ns: str | None = "ns", **meta: Any
) -> Obj:
    body: Obj = {"metadata": {"name": name, **meta}}
    if owners:
        body["metadata"]["ownerReferences"] = list(owners)
    return store.create(rtype, ns if rtype.namespaced else None, body)


@pytest.fixture
def store() -> Store:
    store = Store()
    install(store, lambda: KINDS)
    return store


def exists(store: Store, rtype: ResourceType, name: str, ns: str | None = "ns") -> bool:
    return store.try_get(rtype, ns if rtype.namespaced else None, name) is not None


def test_dependents_go_with_their_owner(store: Store) -> None:
    owner = make(store, SECRETS, "owner")
    make(store, SERVICEACCOUNTS, "sa", ref(owner))
    make(store, ROLES, "role", ref(owner))
    grandchild_of = make(store, SERVICEACCOUNTS, "middle", ref(owner))
    make(store, ROLES, "leaf", ref(grandchild_of))
    store.delete(SECRETS, "ns", "owner")
    assert not any(
        exists(store, t, n) for t, n in [(SERVICEACCOUNTS, "sa"), (ROLES, "role"), (ROLES, "leaf")]
    )


def test_absent_owners_wrong_uids_and_other_namespaces(store: Store) -> None:
    owner = make(store, SECRETS, "owner")
    make(store, SERVICEACCOUNTS, "ghosted", {**ref(owner), "name": "ghost", "uid": GHOST})
    make(store, SERVICEACCOUNTS, "wrong-uid", {**ref(owner), "uid": GHOST})
    make(store, SERVICEACCOUNTS, "elsewhere", ref(owner), ns="other")
    make(store, SERVICEACCOUNTS, "fine", ref(owner))
    assert [exists(store, SERVICEACCOUNTS, n) for n in ("ghosted", "wrong-uid", "fine")] == [
        False,
        False,
        True,
    ]
    assert not exists(store, SERVICEACCOUNTS, "elsewhere", ns="other")


def test_what_the_collector_never_deletes(store: Store) -> None:
    owner = make(store, SECRETS, "owner")
    make(store, CLUSTERROLEBINDINGS, "crb", ref(owner))
    make(
        store,
        SERVICEACCOUNTS,
        "widget",
        {"apiVersion": "example.com/v1", "kind": "Widget", "name": "w", "uid": GHOST},
    )
    store.delete(SECRETS, "ns", "owner")
    assert exists(store, CLUSTERROLEBINDINGS, "crb")
    assert exists(store, SERVICEACCOUNTS, "widget")


def test_a_remaining_owner_keeps_the_dependent_without_the_absent_one(store: Store) -> None:
    first, second = make(store, SECRETS, "first"), make(store, SECRETS, "second")
    make(store, SERVICEACCOUNTS, "shared", ref(first), ref(second))
    store.delete(SECRETS, "ns", "first")
    assert store.get(SERVICEACCOUNTS, "ns", "shared")["metadata"]["ownerReferences"] == [ref(second)]


def test_a_cluster_scoped_owner_may_own_namespaced_dependents(store: Store) -> None:
    owner = make(store, CLUSTERROLES, "cr")
    make(store, ROLES, "role", ref(owner))
    store.delete(CLUSTERROLES, None, "cr")
    assert not exists(store, ROLES, "role")


def test_finalizers_hold_a_deleted_object(store: Store) -> None:
    held = make(store, SECRETS, "held", finalizers=["example.com/keep"])
    deleted = delete(store, SECRETS, held, Propagation())
    assert not deleted.gone and deleted.obj["metadata"]["deletionTimestamp"]
    assert deleted.obj["metadata"]["deletionGracePeriodSeconds"] == 0
    current = store.get(SECRETS, "ns", "held")
    current["metadata"]["finalizers"] = []
    store.update(SECRETS, "ns", current)
    assert not exists(store, SECRETS, "held")


def test_foreground_waits_for_blocking_dependents_and_orphan_keeps_them(store: Store) -> None:
    owner = make(store, SECRETS, "fg")
    make(store, SERVICEACCOUNTS, "blocking", ref(owner, blockOwnerDeletion=True))
    delete(store, SECRETS, store.get(SECRETS, "ns", "fg"), Propagation("Foreground"))
    assert not exists(store, SERVICEACCOUNTS, "blocking") and not exists(store, SECRETS, "fg")
    owner = make(store, SECRETS, "or")
    make(store, SERVICEACCOUNTS, "kept", ref(owner))
    delete(store, SECRETS, owner, Propagation("Orphan"))
    assert not exists(store, SECRETS, "or")
    assert "ownerReferences" not in store.get(SERVICEACCOUNTS, "ns", "kept")["metadata"]


def test_delete_options_are_validated() -> None:
    with pytest.raises(ApiError) as err:
        Propagation.of({"propagationPolicy": "Sideways"})
    assert err.value.code == 422
    assert err.value.message == (
        'DeleteOptions.meta.k8s.io "" is invalid: propagationPolicy: Unsupported value: "Sideways": supported '
        'values: "Foreground", "Background", "Orphan", "nil"'
    )
    assert Propagation.of({"orphanDependents": True}).finalizers(["a/b"]) == ["a/b", "orphan"]
    assert Propagation.of({}).finalizers(["foregroundDeletion"]) == ["foregroundDeletion"]
    assert Propagation.of({"propagationPolicy": "Background"}).finalizers(["orphan"]) == []


async def test_over_http(kubesim: KubeSim) -> None:
    secrets, accounts = "/api/v1/namespaces/default/secrets", "/api/v1/namespaces/default/serviceaccounts"
    async with client(kubesim) as http:
        _, owner, _ = await call(http, "POST", secrets, json={"metadata": {"name": "owner"}})
        dependent = {"metadata": {"name": "dep", "ownerReferences": [ref(owner, blockOwnerDeletion=True)]}}
        assert (await call(http, "POST", accounts, json=dependent))[0] == 201
        code, body, _ = await call(
            http, "DELETE", f"{secrets}/owner", json={"propagationPolicy": "Foreground"}
        )
        assert code == 200 and body["metadata"]["finalizers"] == ["foregroundDeletion"]
        for _ in range(100):
            if (await call(http, "GET", f"{accounts}/dep"))[0] == 404 and (
                await call(http, "GET", f"{secrets}/owner")
            )[0] == 404:
                break
            await asyncio.sleep(0.01)
        else:
            raise AssertionError("the foreground deletion never finished")
        held = {"metadata": {"name": "held", "finalizers": ["example.com/keep"]}}
        assert (await call(http, "POST", secrets, json=held))[0] == 201
        code, body, _ = await call(http, "DELETE", f"{secrets}/held", json={"orphanDependents": False})
        assert code == 202 and body["metadata"]["deletionTimestamp"]
        more = {"metadata": {"finalizers": ["example.com/keep", "example.com/more"]}}
        headers = {"Content-Type": "application/merge-patch+json"}
        code, body, _ = await call(http, "PATCH", f"{secrets}/held", json=more, headers=headers)
        assert code == 422
        assert body["message"] == (
            'Secret "held" is invalid: metadata.finalizers: Forbidden: no new finalizers can be added if the '
            'object is being deleted, found new finalizers []string{"example.com/more"}'
        )
        assert (
            len(body["details"]["causes"]) == 2
        )  # validated by the generic store and by the type, as upstream
        code, _, _ = await call(
            http, "PATCH", f"{secrets}/held", json={"metadata": {"finalizers": None}}, headers=headers
        )
        assert code == 200
        assert (await call(http, "GET", f"{secrets}/held"))[0] == 404
