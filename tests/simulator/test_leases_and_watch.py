"""Leases with optimistic concurrency (leader election relies on it) and watches."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from kubesim_support import call, client

from kubesim import KubeSim

LEASES = "/apis/coordination.k8s.io/v1/namespaces/default/leases"


def lease(name: str, holder: str, **meta: Any) -> dict[str, Any]:
    return {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": name, **meta},
        "spec": {
            "holderIdentity": holder,
            "leaseDurationSeconds": 15,
            "renewTime": "2025-01-01T00:00:00.000000Z",
        },
    }


async def test_stale_resource_version_is_a_conflict(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, created, _ = await call(http, "POST", LEASES, json=lease("janitor", "a"))
        assert code == 201
        rv = created["metadata"]["resourceVersion"]

        # replica a renews with the version it read
        renewal = lease("janitor", "a", resourceVersion=rv)
        renewal["spec"]["renewTime"] = "2025-01-01T00:00:10.000000Z"
        ok, renewed, _ = await call(http, "PUT", f"{LEASES}/janitor", json=renewal)
        assert ok == 200
        assert int(renewed["metadata"]["resourceVersion"]) > int(rv)

        # replica b tries to take over with the old version: 409, and the lease is unchanged
        code, body, _ = await call(
            http, "PUT", f"{LEASES}/janitor", json=lease("janitor", "b", resourceVersion=rv)
        )
        assert code == 409
        assert body["reason"] == "Conflict"
        assert body["message"] == (
            'Operation cannot be fulfilled on leases.coordination.k8s.io "janitor": the object has been modified; '
            "please apply your changes to the latest version and try again"
        )
        assert body["details"] == {"name": "janitor", "group": "coordination.k8s.io", "kind": "leases"}
        _, current, _ = await call(http, "GET", f"{LEASES}/janitor")
        assert current["spec"]["holderIdentity"] == "a"

        # a patch carrying a stale resourceVersion is refused the same way
        patch = json.dumps({"metadata": {"resourceVersion": rv}, "spec": {"holderIdentity": "b"}})
        code, _, _ = await call(
            http,
            "PATCH",
            f"{LEASES}/janitor",
            data=patch,
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert code == 409


async def test_concurrent_acquisition_has_one_winner(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, created, _ = await call(http, "POST", LEASES, json=lease("leader", ""))
        rv = created["metadata"]["resourceVersion"]
        results = await asyncio.gather(
            *(
                call(http, "PUT", f"{LEASES}/leader", json=lease("leader", f"r{i}", resourceVersion=rv))
                for i in range(5)
            )
        )
    codes = sorted(code for code, _, _ in results)
    assert codes == [200, 409, 409, 409, 409]


async def test_put_creates_a_missing_lease(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "PUT", f"{LEASES}/fresh", json=lease("fresh", "a"))
    assert code == 201
    assert body["spec"]["holderIdentity"] == "a"


async def test_lease_validation(kubesim: KubeSim) -> None:
    bad = lease("x", "a")
    bad["spec"]["leaseDurationSeconds"] = 0
    wrong_time = lease("y", "a")
    wrong_time["spec"]["renewTime"] = "yesterday"
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", LEASES, json=bad)
        time_code, time_body, _ = await call(http, "POST", LEASES, json=wrong_time)
    assert code == 422
    assert body["message"] == (
        'Lease.coordination.k8s.io "x" is invalid: spec.leaseDurationSeconds: Invalid value: 0: must be greater than 0'
    )
    assert time_code == 400
    assert time_body["reason"] == "BadRequest"


async def test_an_update_that_changes_nothing_keeps_the_version(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, created, _ = await call(http, "POST", LEASES, json=lease("same", "a"))
        _, again, _ = await call(http, "PUT", f"{LEASES}/same", json=created)
    assert again["metadata"]["resourceVersion"] == created["metadata"]["resourceVersion"]


async def _read_events(resp: Any, count: int) -> list[dict[str, Any]]:
    events: list[dict[str, Any]] = []
    while len(events) < count:
        line = await asyncio.wait_for(resp.content.readline(), timeout=5)
        if not line:
            break
        events.append(json.loads(line))
    return events


async def test_watch_streams_events(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, listed, _ = await call(http, "GET", LEASES)
        rv = listed["metadata"]["resourceVersion"]
        async with http.get(LEASES, params={"watch": "true", "resourceVersion": rv}) as resp:
            assert resp.status == 200
            _, created, _ = await call(http, "POST", LEASES, json=lease("w", "a"))
            await call(
                http,
                "PUT",
                f"{LEASES}/w",
                json=lease("w", "b", resourceVersion=created["metadata"]["resourceVersion"]),
            )
            await call(http, "DELETE", f"{LEASES}/w")
            events = await _read_events(resp, 3)
    assert [e["type"] for e in events] == ["ADDED", "MODIFIED", "DELETED"]
    assert events[1]["object"]["spec"]["holderIdentity"] == "b"
    assert events[0]["object"]["kind"] == "Lease"
    versions = [int(e["object"]["metadata"]["resourceVersion"]) for e in events]
    assert versions == sorted(versions)


async def test_watch_without_version_starts_with_the_current_state(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        await call(http, "POST", LEASES, json=lease("existing", "a"))
        async with http.get(LEASES, params={"watch": "1", "timeoutSeconds": "5"}) as resp:
            events = await _read_events(resp, 1)
    assert events[0]["type"] == "ADDED"
    assert events[0]["object"]["metadata"]["name"] == "existing"


async def test_watch_replays_from_a_resource_version(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, first, _ = await call(http, "POST", LEASES, json=lease("one", "a"))
        await call(http, "POST", LEASES, json=lease("two", "a"))
        async with http.get(
            LEASES,
            params={
                "watch": "true",
                "resourceVersion": first["metadata"]["resourceVersion"],
                "timeoutSeconds": "5",
            },
        ) as resp:
            events = await _read_events(resp, 1)
    assert [(e["type"], e["object"]["metadata"]["name"]) for e in events] == [("ADDED", "two")]


async def test_watch_ends_at_timeout(kubesim: KubeSim) -> None:
    async with (
        client(kubesim) as http,
        http.get(LEASES, params={"watch": "true", "timeoutSeconds": "0.2"}) as resp,
    ):
        body = await asyncio.wait_for(resp.read(), timeout=5)
    assert body == b""


@pytest.mark.kubectl
async def test_kubectl_wait_uses_watch(kubesim: KubeSim) -> None:
    from kubesim_support import admin

    async with client(kubesim) as http:
        await call(http, "POST", LEASES, json=lease("waited", "a"))
    result = await admin(
        kubesim, "wait", "--for=jsonpath={.spec.holderIdentity}=a", "lease/waited", "--timeout=5s"
    )
    assert result.returncode == 0, result.stderr
