"""The janitor's leader election relies on optimistic concurrency: a Lease update with a stale resourceVersion is
a 409 Conflict, a second create an AlreadyExists, both with the real server's messages."""

from __future__ import annotations

from typing import Any

from conformance_support import Pair, assert_same, status_of

LEASES = "/apis/coordination.k8s.io/v1/namespaces/{ns}/leases"


def lease(holder: str, resource_version: str | None = None) -> dict[str, Any]:
    meta: dict[str, Any] = {"name": "janitor"}
    if resource_version:
        meta["resourceVersion"] = resource_version
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": meta,
        "spec": {"holderIdentity": holder, "leaseDurationSeconds": 15},
    }


async def test_lease_create_conflicts_and_stale_updates(pair: Pair) -> None:
    path = LEASES.format(ns=pair.namespace)
    created = await pair.setup("POST", path, lease("a"))
    assert_same(created[0].body["spec"], created[1].body["spec"])

    sim, real = await pair.both("POST", path, lease("b"))
    assert_same(status_of(sim), status_of(real), what="a second create")

    # an unchanged object is not written: its resourceVersion stays (so it is not stale afterwards)
    versions = [c.body["metadata"]["resourceVersion"] for c in created]
    for peer, version in zip(pair.peers, versions, strict=True):
        answer = await peer.call("PUT", f"{path}/janitor", lease("a", version))
        assert answer.status == 200, answer.body
        assert answer.body["metadata"]["resourceVersion"] == version, peer.name
    # a real change at the current version makes the first version stale
    for peer, version in zip(pair.peers, versions, strict=True):
        answer = await peer.call("PUT", f"{path}/janitor", lease("a2", version))
        assert answer.status == 200, answer.body
        assert answer.body["metadata"]["resourceVersion"] != version, peer.name
    sim = await pair.sim.call("PUT", f"{path}/janitor", lease("b", versions[0]))
    real = await pair.real.call("PUT", f"{path}/janitor", lease("b", versions[1]))
    assert_same(status_of(sim), status_of(real), what="an update at a stale resourceVersion")
    assert real.status == 409

    sim, real = await pair.both("PUT", f"{path}/janitor", lease("c"))
    assert_same(status_of(sim), status_of(real), what="an update without a resourceVersion")
