"""POST /v1/introspect with real simulator tokens: active, revoked, expired, foreign, someone else's, garbage."""

from __future__ import annotations

import base64
import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from ops_api_support import ALICE, CLUSTER, NS, SA, Api, mint, record_issued
from support.served import assert_problem

from broker._kits.jwt import decode_unverified
from broker.audit import SqlAuditStore
from broker.kube import Cluster
from broker.usecases.clusters import ClusterHandle
from kubesim import KubeSim, SimOptions

INACTIVE = {"active": False}


async def introspect(api: Api, token: str, who: str = "alice") -> dict[str, Any]:
    response, body = await api.call("POST", "/v1/introspect", who=who, json_body={"token": token})
    assert response.status == 200, body
    assert response.headers["Cache-Control"] == "no-store"
    doc: dict[str, Any] = json.loads(body)
    return doc


async def foreign_token(tmp_path: Path) -> str:
    """A genuine token of another cluster (other signing keys)."""
    async with KubeSim(SimOptions(), state_dir=tmp_path / "other") as other:
        assert other.admin_kubeconfig is not None
        async with await Cluster.connect(
            "other", kubeconfig=other.admin_kubeconfig, context=None, in_cluster=False, request_timeout=5
        ) as client:
            await client.accounts.ensure(NS, SA)
            return (await client.tokens.request(NS, SA, audiences=[], expiration_seconds=600)).token


async def test_an_issued_token_is_active_for_its_owner_and_operators(
    cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    doc = await introspect(api, minted.token)
    assert doc["active"] is True and doc["revoked"] is False
    assert doc["token_id"] == minted.record.id and doc["state"] == "issued"
    assert "reason" not in doc
    claims = decode_unverified(minted.token).claims
    assert (
        doc["claims"]["jti"] == claims["jti"] and doc["claims"]["sub"] == f"system:serviceaccount:{NS}:{SA}"
    )
    assert datetime.fromisoformat(doc["expires_at"]) == datetime.fromtimestamp(claims["exp"], UTC)
    assert doc["issuance"]["caller"] == {"user": "alice", "method": "mtls", "groups": ["dev"]}
    assert doc["issuance"]["bound_secret"]["name"] == minted.record.bound_secret.name  # type: ignore[union-attr]
    assert (await introspect(api, minted.token, who="ops"))["active"] is True


async def test_someone_elses_token_is_just_inactive(
    cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    assert await introspect(api, minted.token, who="bob") == INACTIVE
    assert await introspect(api, minted.token, who="alice-key") == INACTIVE


async def test_a_revoked_token_is_inactive_and_says_so(
    cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    response, body = await api.call("DELETE", f"/v1/tokens/{minted.record.id}", who="alice")
    assert response.status == 204, body
    doc = await introspect(api, minted.token)
    assert doc["active"] is False and doc["revoked"] is True
    assert doc["state"] == "revoked" and doc["reason"] == "revoked"
    assert doc["issuance"]["revoked_by"] == "alice"
    # the signature still verifies: the claims are shown, the token is dead anyway
    assert doc["claims"]["jti"] == minted.record.jti


async def test_expired_tokens(
    cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    later = datetime.now(UTC) + timedelta(hours=2)
    # the same token introspected two hours on: past its exp
    api: Api = await make_api(store, {CLUSTER: cluster}, clock=lambda: later)
    doc = await introspect(api, minted.token)
    assert doc["active"] is False and doc["reason"] == "expired" and doc["revoked"] is False
    # the janitor has deleted its Secret and recorded it
    await store.mark_expired([minted.record.id])
    now_api: Api = await make_api(store, {CLUSTER: cluster})
    doc = await introspect(now_api, minted.token)
    assert doc["active"] is False and doc["state"] == "expired" and doc["reason"] == "expired"


async def test_tokens_that_are_not_ours(
    cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any], tmp_path: Path
) -> None:
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    foreign = await foreign_token(tmp_path)
    header, payload, _ = minted.token.split(".")
    # our jti, another signature: not the token that was issued
    forged = f"{header}.{payload}.{base64.urlsafe_b64encode(b'x' * 256).decode().rstrip('=')}"
    for token in (foreign, forged, "a.b.c", "not a token", header + "." + payload):
        assert await introspect(api, token, who="ops") == INACTIVE


async def test_a_recorded_token_whose_signature_does_not_verify(
    cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any], tmp_path: Path
) -> None:
    # a record pointing at a token another cluster signed: found by jti, but the keys of `sim` reject it
    foreign = await foreign_token(tmp_path)
    claims = decode_unverified(foreign).claims
    record = await record_issued(store, ALICE, began=datetime.now(UTC), jti=claims["jti"], token=foreign)
    api: Api = await make_api(store, {CLUSTER: cluster})
    doc = await introspect(api, foreign)
    assert doc["active"] is False and doc["token_id"] == record.id
    assert doc["reason"] == "the signature does not verify" and "claims" not in doc


async def test_bad_bodies_never_echo_the_token(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    api: Api = await make_api(store, {})
    secret = "eyJhbGciOiJSUzI1NiJ9.eyJzdWIiOiJzZWNyZXQifQ." + "s" * 40
    for body_json in ({}, {"token": 5}, {"token": ""}, {"token": secret, "extra": 1}, {"token": "x" * 20000}):
        response, body = await api.call("POST", "/v1/introspect", json_body=body_json)
        assert_problem(response, body, 422)
        assert secret.encode() not in body
    # RFC 7662's form encoding is refused with a reason: this API speaks JSON
    form = {"Content-Type": "application/x-www-form-urlencoded"}
    response, body = await api.call("POST", "/v1/introspect", data=b"token=abc", headers=form)
    assert_problem(response, body, 415)


async def test_no_token_reaches_the_log(
    cluster: ClusterHandle,
    store: SqlAuditStore,
    make_api: Callable[..., Any],
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    await introspect(api, minted.token)
    await introspect(api, minted.token, who="bob")
    response, _ = await api.call("DELETE", f"/v1/tokens/{minted.record.id}")
    assert response.status == 204
    await introspect(api, minted.token)
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "token revoked" in logged
    assert minted.token not in logged
    assert minted.token.split(".")[2] not in logged


async def test_keys_of_the_issuing_cluster_unreachable_is_503(
    kubesim: KubeSim, cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    kubesim.faults.outage = True
    response, body = await api.call("POST", "/v1/introspect", who="alice", json_body={"token": minted.token})
    assert_problem(response, body, 503)
    # a token that is not ours never reaches the cluster: still the plain answer
    assert await introspect(api, "a.b.c") == INACTIVE
    kubesim.faults.clear()
    assert (await introspect(api, minted.token))["active"] is True
