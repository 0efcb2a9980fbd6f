"""Cluster against the simulator: service accounts, binding Secrets, namespaces, readiness."""

from __future__ import annotations

import asyncio

import pytest
from kube_support import FAST_RETRY, MakeClient, posts

from broker.domain.errors import BrokerError
from broker.kube import BINDING_SA_ANNOTATION, Cluster
from kubesim import KubeSim
from kubesim.kinds import SERVICEACCOUNTS

SA_COLLECTION = "/api/v1/namespaces/default/serviceaccounts"


async def test_server_url_and_ca_for_kubeconfigs(kubesim: KubeSim, admin: Cluster) -> None:
    assert admin.server_url == kubesim.url
    assert admin.ca_pem == kubesim.ca_pem
    assert admin.proxy is None
    await admin.discovery.ping()


async def test_hundred_concurrent_ensures_make_one_post(kubesim: KubeSim, admin: Cluster) -> None:
    refs = await asyncio.gather(
        *(admin.accounts.ensure("default", "deployer", labels={"app": "broker"}) for _ in range(100))
    )
    assert len({r.uid for r in refs}) == 1
    assert posts(kubesim, SA_COLLECTION) == [201]
    sa = await admin.api.get_json(f"{SA_COLLECTION}/deployer")
    assert sa["metadata"]["uid"] == refs[0].uid
    assert sa["metadata"]["labels"] == {"app": "broker"}
    assert sa["automountServiceAccountToken"] is False
    # cached: no further requests at all
    before = len(kubesim.audit_events)
    await admin.accounts.ensure("default", "deployer")
    assert len(kubesim.audit_events) == before


async def test_existing_account_is_not_created(kubesim: KubeSim, admin: Cluster) -> None:
    ref = await admin.accounts.ensure("default", "default")
    assert ref.uid
    assert posts(kubesim, SA_COLLECTION) == []


async def test_already_exists_race_between_replicas(kubesim: KubeSim, make_client: MakeClient) -> None:
    """Two replicas (two clients, no shared single flight) race to create the same account: both succeed."""
    assert kubesim.admin_kubeconfig is not None
    one, two = await make_client(kubesim.admin_kubeconfig), await make_client(kubesim.admin_kubeconfig)
    refs = await asyncio.gather(
        *(c.accounts.ensure("default", "raced") for c in (one, two) for _ in range(10))
    )
    assert len({r.uid for r in refs}) == 1
    codes = posts(kubesim, SA_COLLECTION)
    assert codes.count(201) == 1
    assert set(codes) <= {201, 409}


async def test_already_exists_after_the_lookup(kubesim: KubeSim, admin: Cluster) -> None:
    """The account appears between our GET (404) and our POST: the 409 AlreadyExists is success."""
    # every request on the collection waits before it is handled, so another writer can slip in between
    kubesim.faults.path_prefix = SA_COLLECTION
    kubesim.faults.latency = 0.3
    task = asyncio.create_task(admin.accounts.ensure("default", "late"))
    async with asyncio.timeout(5):
        while not any(
            e.method == "GET" and e.path.endswith("/late") and e.code == 404 for e in kubesim.audit_events
        ):
            await asyncio.sleep(0.005)
    # our POST is now waiting in the simulator: create the account behind its back
    made = kubesim.store.create(SERVICEACCOUNTS, "default", {"metadata": {"name": "late"}})
    ref = await task
    assert ref.uid == made["metadata"]["uid"]
    assert posts(kubesim, SA_COLLECTION) == [409]


async def test_missing_account_without_create_is_502(admin: Cluster) -> None:
    with pytest.raises(BrokerError) as info:
        await admin.accounts.ensure("default", "ghost", create=False)
    assert info.value.status == 502
    assert 'service account "default/ghost" does not exist' in info.value.detail


async def test_missing_namespace(admin: Cluster) -> None:
    with pytest.raises(BrokerError) as info:
        await admin.accounts.ensure("nowhere", "deployer")
    assert info.value.status == 422 and "nowhere" in info.value.detail
    with pytest.raises(BrokerError) as info:
        await admin.discovery.namespace_labels("nowhere")
    assert info.value.status == 422
    with pytest.raises(BrokerError) as info:
        await admin.secrets.create_binding("nowhere", service_account="x")
    assert info.value.status == 422


async def test_invalid_names_never_reach_the_server(kubesim: KubeSim, admin: Cluster) -> None:
    before = len(kubesim.audit_events)
    for namespace, name in [("default", "../secrets"), ("Default", "x"), ("default", "a/b"), ("x" * 64, "y")]:
        with pytest.raises(BrokerError) as info:
            await admin.accounts.ensure(namespace, name)
        assert info.value.status == 422
    assert len(kubesim.audit_events) == before


async def test_namespace_labels(admin: Cluster) -> None:
    await admin.api.post_json("/api/v1/namespaces", {"metadata": {"name": "ci", "labels": {"team": "build"}}})
    assert await admin.discovery.namespace_labels("ci") == {
        "team": "build",
        "kubernetes.io/metadata.name": "ci",
    }


async def test_binding_secret_round_trip(admin: Cluster) -> None:
    ref = await admin.secrets.create_binding(
        "default",
        service_account="deployer",
        labels={"token-broker.io/issued": "yes"},
        annotations={"a": "b"},
    )
    assert ref.name.startswith("token-broker-") and ref.uid
    secret = await admin.api.get_json(f"/api/v1/namespaces/default/secrets/{ref.name}")
    assert secret["type"] == "Opaque"
    assert secret["metadata"]["uid"] == ref.uid
    assert secret["metadata"]["annotations"] == {"a": "b", BINDING_SA_ANNOTATION: "deployer"}
    assert secret["metadata"]["labels"] == {"token-broker.io/issued": "yes"}


async def test_delete_secret(admin: Cluster) -> None:
    ref = await admin.secrets.create_binding("default", service_account="deployer")
    assert await admin.secrets.delete("default", ref.name, uid="not-its-uid") is False
    await admin.api.get_json(f"/api/v1/namespaces/default/secrets/{ref.name}")  # still there
    assert await admin.secrets.delete("default", ref.name, uid=ref.uid) is True
    assert await admin.secrets.delete("default", ref.name, uid=ref.uid) is False
    assert await admin.secrets.delete("default", ref.name) is False


async def test_token_request_for_a_vanished_account_forgets_it(kubesim: KubeSim, admin: Cluster) -> None:
    first = await admin.accounts.ensure("default", "fleeting")
    await admin.api.get_json(f"{SA_COLLECTION}/fleeting")
    kubesim.store.delete(SERVICEACCOUNTS, "default", "fleeting")
    with pytest.raises(BrokerError) as info:
        await admin.tokens.request("default", "fleeting", audiences=[], expiration_seconds=600)
    assert info.value.status == 502
    assert 'service account "default/fleeting" does not exist' in info.value.detail
    again = await admin.accounts.ensure("default", "fleeting")
    assert again.uid != first.uid
    await admin.tokens.request("default", "fleeting", audiences=[], expiration_seconds=600)


async def test_ping_fails_fast_when_down(kubesim: KubeSim, make_client: MakeClient) -> None:
    assert kubesim.admin_kubeconfig is not None
    client = await make_client(kubesim.admin_kubeconfig, retry=FAST_RETRY)
    kubesim.faults.outage = True
    with pytest.raises(BrokerError) as info:
        await client.discovery.ping()
    assert info.value.status == 503 and info.value.retry_after
    # readiness does not retry; aiohttp itself resends an idempotent request once on a dropped connection
    # (RFC 9112 §9.3.1), so at most two connections were tried
    assert kubesim.faults.injected["reset"] <= 2
