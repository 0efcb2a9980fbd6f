"""DELETE /v1/tokens/{token_id} against the simulator: the bound Secret goes, the API server rejects the token,
the record says revoked — or, when the API server did not delete it, nothing is recorded."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ops_api_support import (
    ALICE,
    CLUSTER,
    NS,
    OPS,
    Api,
    call_as_token,
    mint,
    record_issued,
    token_review,
)
from support.processes import kubectl
from support.served import assert_problem

from broker.audit import AuditRecord, SecretBinding, SqlAuditStore
from broker.domain.errors import BrokerError
from broker.usecases.clusters import ClusterHandle
from kubesim import KubeSim


async def secret_exists(handle: ClusterHandle, name: str) -> bool:
    try:
        await handle.client.api.get_json(f"/api/v1/namespaces/{NS}/secrets/{name}")
    except BrokerError as exc:
        if exc.status == 404 or "not found" in exc.detail.lower():
            return False
        raise
    return True


async def test_revoking_deletes_the_secret_and_the_api_server_rejects_the_token(
    kubesim: KubeSim,
    cluster: ClusterHandle,
    store: SqlAuditStore,
    make_api: Callable[..., Any],
    tmp_path: Path,
) -> None:
    minted = await mint(store, cluster, ALICE)
    secret = minted.record.bound_secret
    assert secret is not None
    api: Api = await make_api(store, {CLUSTER: cluster})
    # before: the API server authenticates the token (403 = known but not allowed; 401 = unknown)
    assert (await token_review(cluster, minted.token)).get("authenticated") is True
    assert await call_as_token(kubesim, minted.token) == 403

    response, body = await api.call(
        "DELETE", f"/v1/tokens/{minted.record.id}", who="alice", json_body={"reason": "left in a build log"}
    )
    assert response.status == 204, body
    assert body == b""

    assert not await secret_exists(cluster, secret.name)
    review = await token_review(cluster, minted.token)
    assert not review.get("authenticated") and review.get("error")
    assert await call_as_token(kubesim, minted.token) == 401

    [item] = (await api.get_json("/v1/tokens", who="alice", token_id=minted.record.id))["items"]
    assert item["state"] == "revoked" and item["active"] is False
    assert item["revoked_by"] == "alice" and item["reason"] == "left in a build log"
    events = (await api.get_json("/v1/audit", token_id=minted.record.id))["items"]
    assert [e["event"] for e in events] == ["revoked", "issued"]
    assert events[0]["revoked_by"] == "alice" and events[0]["reason"] == "left in a build log"

    # DELETE is idempotent: a second one changes nothing and writes no second event
    response, body = await api.call("DELETE", f"/v1/tokens/{minted.record.id}", who="alice")
    assert response.status == 204, body
    assert len((await api.get_json("/v1/audit", token_id=minted.record.id))["items"]) == 2


@pytest.mark.kubectl
async def test_kubectl_gets_401_once_the_token_is_revoked(
    kubesim: KubeSim,
    cluster: ClusterHandle,
    store: SqlAuditStore,
    make_api: Callable[..., Any],
    tmp_path: Path,
) -> None:
    minted = await mint(store, cluster, ALICE)
    kubeconfig = kubesim.write_kubeconfig(tmp_path / "token.kubeconfig", token=minted.token)
    whoami = ("auth", "whoami", "-o", "jsonpath={.status.userInfo.username}")
    before = await kubectl(kubeconfig, *whoami)
    assert before.returncode == 0, before.stderr
    assert before.stdout == f"system:serviceaccount:{NS}:deployer"
    api: Api = await make_api(store, {CLUSTER: cluster})
    response, body = await api.call("DELETE", f"/v1/tokens/{minted.record.id}")
    assert response.status == 204, body
    after = await kubectl(kubeconfig, *whoami)
    assert after.returncode != 0
    assert "Unauthorized" in after.stderr or "must be logged in" in after.stderr, after.stderr


async def test_only_the_owner_or_an_operator_may_revoke_others_get_404(
    kubesim: KubeSim, cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    path = f"/v1/tokens/{minted.record.id}"
    unknown = await api.call("DELETE", f"/v1/tokens/{uuid.uuid4()}", who="bob")
    refused = await api.call("DELETE", path, who="bob")
    # not 403: bob must not learn that the token exists; the answer is the same as for an unknown id
    assert assert_problem(*refused, 404) | {"request_id": None} == assert_problem(*unknown, 404) | {
        "request_id": None
    }
    # the API key named alice is not the certificate alice
    assert_problem(*(await api.call("DELETE", path, who="alice-key")), 404)
    assert_problem(*(await api.call("DELETE", "/v1/tokens/" + "x" * 300)), 404)
    assert await call_as_token(kubesim, minted.token) == 403
    assert (await store.get_issuance(minted.record.id)).event == "issued"  # type: ignore[union-attr]

    response, body = await api.call("DELETE", path, who="ops")
    assert response.status == 204, body
    revoked = await store.get_issuance(minted.record.id)
    assert revoked is not None and revoked.event == "revoked" and revoked.revoked_by == "ops"
    assert await call_as_token(kubesim, minted.token) == 401


async def test_a_token_without_a_bound_secret_is_not_revocable(
    kubesim: KubeSim, cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE, bind=False, role="viewer")
    api: Api = await make_api(store, {CLUSTER: cluster})
    doc = assert_problem(*(await api.call("DELETE", f"/v1/tokens/{minted.record.id}", who="alice")), 409)
    assert doc["detail"].startswith("token is not revocable: role 'viewer' does not bind tokens to a Secret")
    assert minted.record.expires_at is not None
    assert minted.record.expires_at.strftime("%Y-%m-%dT%H:%M:%S") in doc["detail"]
    assert await call_as_token(kubesim, minted.token) == 403
    assert (await store.get_issuance(minted.record.id)).event == "issued"  # type: ignore[union-attr]


async def test_when_the_api_server_does_not_delete_the_secret_nothing_is_recorded(
    kubesim: KubeSim, cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    secret = minted.record.bound_secret
    assert secret is not None
    api: Api = await make_api(store, {CLUSTER: cluster})
    path = f"/v1/tokens/{minted.record.id}"

    kubesim.faults.path_prefix = f"/api/v1/namespaces/{NS}/secrets"
    kubesim.faults.outage = True
    doc = assert_problem(*(await api.call("DELETE", path)), 503)
    assert "unreachable" in doc["detail"] or "unavailable" in doc["detail"].lower()
    kubesim.faults.clear()
    kubesim.faults.path_prefix = f"/api/v1/namespaces/{NS}/secrets"
    kubesim.faults.error_code, kubesim.faults.error_count = 403, 10
    assert_problem(*(await api.call("DELETE", path)), 502)
    kubesim.faults.clear()

    assert (await store.get_issuance(minted.record.id)).event == "issued"  # type: ignore[union-attr]
    assert [e["event"] for e in (await api.get_json("/v1/audit", token_id=minted.record.id))["items"]] == [
        "issued"
    ]
    assert await secret_exists(cluster, secret.name)
    assert await call_as_token(kubesim, minted.token) == 403

    response, body = await api.call("DELETE", path)
    assert response.status == 204, body
    assert await call_as_token(kubesim, minted.token) == 401


async def test_a_secret_already_gone_still_records_the_revocation(
    kubesim: KubeSim, cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    secret = minted.record.bound_secret
    assert secret is not None
    assert await cluster.client.secrets.delete(secret.namespace, secret.name) is True
    api: Api = await make_api(store, {CLUSTER: cluster})
    response, body = await api.call("DELETE", f"/v1/tokens/{minted.record.id}")
    assert response.status == 204, body
    assert (await store.get_issuance(minted.record.id)).event == "revoked"  # type: ignore[union-attr]


async def test_states_other_than_issued(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    now = datetime.now(UTC)
    bound = SecretBinding(NS, "tb-gone", "uid-1")
    pending_id, failed_id = str(uuid.uuid4()), str(uuid.uuid4())
    for token_id in (pending_id, failed_id):
        await store.begin_issuance(
            AuditRecord(id=token_id, time=now, event="pending", caller_user="ops", caller_method="mtls",
                        role="deployer", cluster=CLUSTER, namespace=NS)
        )  # fmt: skip
    await store.fail_issuance(failed_id, "the API server refused", status=502)
    expired = await record_issued(store, OPS, began=now - timedelta(hours=1), bound=bound)
    await store.mark_expired([expired.id])
    unknown_cluster = await record_issued(store, OPS, began=now, bound=bound, cluster="gone")
    api: Api = await make_api(store, {})

    assert assert_problem(*(await api.call("DELETE", f"/v1/tokens/{pending_id}")), 409)["detail"].startswith(
        "the token is still being issued"
    )
    assert "failed" in assert_problem(*(await api.call("DELETE", f"/v1/tokens/{failed_id}")), 409)["detail"]
    # already dead: nothing to do, nothing recorded
    response, _ = await api.call("DELETE", f"/v1/tokens/{expired.id}")
    assert response.status == 204
    assert (await store.get_issuance(expired.id)).event == "expired"  # type: ignore[union-attr]
    doc = assert_problem(*(await api.call("DELETE", f"/v1/tokens/{unknown_cluster.id}")), 409)
    assert "'gone'" in doc["detail"] and "tb-gone" in doc["detail"]


async def test_revocation_body_is_validated(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    record = await record_issued(store, OPS, began=datetime.now(UTC), bound=SecretBinding(NS, "s", "u"))
    api: Api = await make_api(store, {})
    path = f"/v1/tokens/{record.id}"
    doc = assert_problem(*(await api.call("DELETE", path, json_body={"reason": 5})), 422)
    assert doc["errors"][0]["field"] == "reason"
    assert_problem(*(await api.call("DELETE", path, json_body={"reason": "x", "force": True})), 422)
    assert_problem(*(await api.call("DELETE", path, json_body={"reason": "a\nforged log line"})), 422)
    assert_problem(
        *(await api.call("DELETE", path, data=b"{not json", headers={"Content-Type": "application/json"})),
        400,
    )
    assert_problem(
        *(await api.call("DELETE", path, data=b"why", headers={"Content-Type": "text/plain"})), 415
    )
    assert (await store.get_issuance(record.id)).event == "issued"  # type: ignore[union-attr]
