"""A struggling API server: 5xx, resets, both kinds of 429, outages and slowness."""

from __future__ import annotations

import pytest
from kube_support import FAST_RETRY, MakeClient, posts

from broker.domain.errors import BrokerError
from broker.kube import BINDING_SA_ANNOTATION, DEFAULT_RETRY_AFTER, Cluster, RetryPolicy
from broker.kube import secrets as secrets_module
from kubesim import KubeSim
from kubesim.kinds import SECRETS

NS, SA = "default", "deployer"
TOKEN_PATH = f"/api/v1/namespaces/{NS}/serviceaccounts/{SA}/token"


async def request(client: Cluster) -> None:
    await client.tokens.request(NS, SA, audiences=["vault"], expiration_seconds=600)


async def test_transient_500s_are_retried(kubesim: KubeSim, admin: Cluster) -> None:
    await admin.accounts.ensure(NS, SA)
    kubesim.faults.error_count = 2
    await request(admin)
    assert kubesim.faults.injected["error"] == 2
    assert posts(kubesim, TOKEN_PATH) == [500, 500, 201]


async def test_persistent_5xx_becomes_503(kubesim: KubeSim, admin: Cluster) -> None:
    await admin.accounts.ensure(NS, SA)
    kubesim.faults.error_count = 100
    kubesim.faults.error_code = 503
    with pytest.raises(BrokerError) as info:
        await request(admin)
    assert info.value.status == 503
    assert info.value.retry_after == DEFAULT_RETRY_AFTER
    assert len(posts(kubesim, TOKEN_PATH)) == FAST_RETRY.attempts


async def test_resets_are_retried(kubesim: KubeSim, admin: Cluster) -> None:
    await admin.accounts.ensure(NS, SA)
    kubesim.faults.reset_count = 2
    await request(admin)
    assert kubesim.faults.injected["reset"] == 2


async def test_resets_do_not_duplicate_a_binding_secret(kubesim: KubeSim, admin: Cluster) -> None:
    """The create is retried after lost answers; the client-chosen name makes the retry find the first one."""
    kubesim.faults.path_prefix = f"/api/v1/namespaces/{NS}/secrets"
    kubesim.faults.reset_count = 1
    ref = await admin.secrets.create_binding(NS, service_account=SA, labels={"case": "reset"})
    kubesim.faults.clear()
    listed = await admin.api.get_json(f"/api/v1/namespaces/{NS}/secrets?labelSelector=case%3Dreset")
    assert [s["metadata"]["uid"] for s in listed["items"]] == [ref.uid]


def _secret(name: str, annotations: dict[str, str]) -> dict[str, object]:
    return {"type": "Opaque", "metadata": {"name": name, "annotations": annotations}}


async def test_answer_lost_after_the_secret_was_made(
    kubesim: KubeSim, admin: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Our first create happened on the server but its answer was lost: the retry's 409 AlreadyExists leads
    to a GET of that Secret instead of a second one.

    The simulator injects faults before it reads a request, so a lost answer after the write cannot be
    produced there; the write is made through the store instead, under the name the client will choose.
    """
    monkeypatch.setattr(secrets_module, "random_name", lambda prefix: prefix + "fixed")
    made = kubesim.store.create(SECRETS, NS, _secret("token-broker-fixed", {BINDING_SA_ANNOTATION: SA}))
    kubesim.faults.path_prefix = f"/api/v1/namespaces/{NS}/secrets"
    kubesim.faults.reset_count = 1
    ref = await admin.secrets.create_binding(NS, service_account=SA)
    assert ref.uid == made["metadata"]["uid"]
    # the simulator audits a reset connection with code 0
    assert posts(kubesim, f"/api/v1/namespaces/{NS}/secrets") == [0, 409]


async def test_a_name_taken_by_someone_else_is_never_adopted(
    kubesim: KubeSim, admin: Cluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(secrets_module, "random_name", lambda prefix: prefix + "taken")
    kubesim.store.create(SECRETS, NS, _secret("token-broker-taken", {"owner": "someone"}))
    # first attempt: a plain collision
    with pytest.raises(BrokerError) as info:
        await admin.secrets.create_binding(NS, service_account=SA)
    assert info.value.status == 502 and "AlreadyExists" in info.value.detail
    # a retry after a lost answer finds a Secret that is not ours
    kubesim.faults.path_prefix = f"/api/v1/namespaces/{NS}/secrets"
    kubesim.faults.reset_count = 1
    with pytest.raises(BrokerError) as info:
        await admin.secrets.create_binding(NS, service_account=SA)
    assert info.value.status == 502 and "not made by the broker" in info.value.detail


@pytest.mark.parametrize("kind", ["throttle_status", "throttle_plain"])
async def test_429_within_the_cap_is_waited_out(kubesim: KubeSim, make_client: MakeClient, kind: str) -> None:
    assert kubesim.admin_kubeconfig is not None
    patient = RetryPolicy(
        attempts=3, max_elapsed=5.0, base_backoff=0.01, max_backoff=0.05, max_retry_after=1.0
    )
    client = await make_client(kubesim.admin_kubeconfig, retry=patient)
    await client.accounts.ensure(NS, SA)
    setattr(kubesim.faults, kind, 1)
    kubesim.faults.retry_after = 1
    await request(client)
    assert kubesim.faults.injected[kind] == 1
    assert posts(kubesim, TOKEN_PATH) == [429, 201]


@pytest.mark.parametrize("kind", ["throttle_status", "throttle_plain"])
async def test_429_beyond_the_cap_is_503_with_the_servers_retry_after(
    kubesim: KubeSim, make_client: MakeClient, kind: str
) -> None:
    assert kubesim.admin_kubeconfig is not None
    impatient = RetryPolicy(
        attempts=3, max_elapsed=5.0, base_backoff=0.01, max_backoff=0.05, max_retry_after=0.5
    )
    client = await make_client(kubesim.admin_kubeconfig, retry=impatient)
    await client.accounts.ensure(NS, SA)
    setattr(kubesim.faults, kind, 1)
    kubesim.faults.retry_after = 7
    with pytest.raises(BrokerError) as info:
        await request(client)
    assert info.value.status == 503
    assert info.value.retry_after == 7.0
    assert "throttling" in info.value.detail
    assert posts(kubesim, TOKEN_PATH) == [429]


async def test_outage_is_503_after_bounded_attempts(kubesim: KubeSim, admin: Cluster) -> None:
    kubesim.faults.outage = True
    with pytest.raises(BrokerError) as info:
        await admin.accounts.ensure(NS, SA)
    assert info.value.status == 503 and info.value.retry_after
    assert "unreachable" in info.value.detail
    # three attempts, each of which aiohttp may resend once on a dropped connection (GET is idempotent)
    assert kubesim.faults.injected["reset"] <= 2 * FAST_RETRY.attempts
    kubesim.faults.clear()
    await admin.accounts.ensure(NS, SA)


async def test_outage_token_request_attempts_are_bounded(kubesim: KubeSim, admin: Cluster) -> None:
    await admin.accounts.ensure(NS, SA)
    kubesim.faults.outage = True
    with pytest.raises(BrokerError) as info:
        await request(admin)
    assert info.value.status == 503
    # POST is not idempotent to aiohttp: exactly our own attempts
    assert kubesim.faults.injected["reset"] == FAST_RETRY.attempts


async def test_latency_beyond_the_request_timeout_is_503(kubesim: KubeSim, make_client: MakeClient) -> None:
    assert kubesim.admin_kubeconfig is not None
    client = await make_client(kubesim.admin_kubeconfig, request_timeout=0.1)
    await client.accounts.ensure(NS, SA)
    kubesim.faults.latency = 0.5
    with pytest.raises(BrokerError) as info:
        await request(client)
    assert info.value.status == 503 and "timed out" in info.value.detail
    assert info.value.retry_after == DEFAULT_RETRY_AFTER
