"""No record, no token: what the broker writes to its audit store around each issuance, and what survives a
crash between the TokenRequest and the record."""

from __future__ import annotations

import asyncio
import hashlib
import json
import signal
import ssl
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from cluster_admin import ClusterAdmin, wait_for_request
from e2e_support import mtls_context, post_token, serve, until_unauthorized

from broker.app.stores import make_sql_store
from broker.audit import AuditFilter
from broker.settings import load_config
from kubesim.kinds import SECRETS


async def objects(stack, kind: str, selector: str | None = None) -> list[dict]:
    return await ClusterAdmin(stack.cluster).list(f"/api/v1/namespaces/{stack.namespace}/{kind}", selector)


async def test_issuance_and_denial_are_recorded_without_the_token(stack) -> None:
    ctx = mtls_context(stack, *stack.paths.caller_cert("jenkins"))
    status, _, text = await post_token(
        stack, ctx, {"role": "deployer", "namespace": stack.namespace, "context": {"job": "build-42"}}
    )
    assert status == 201, text
    body = json.loads(text)
    status, _, _ = await post_token(stack, ctx, {"role": "legacy-robot"})
    assert status == 403

    store = stack.broker.store
    record = await store.get_issuance(body["token_id"])
    assert record is not None and record.event == "issued"
    assert record.jti == body["jti"]
    assert record.caller_user == "jenkins" and record.caller_method == "mtls"
    assert record.context == {"job": "build-42"}
    assert record.bound_secret is not None  # deployer is revocable
    assert record.token_sha256 == hashlib.sha256(body["token"].encode()).hexdigest()
    denials = await store.query_events(AuditFilter(event="denied"))
    assert [d.role for d in denials.items] == ["legacy-robot"]
    assert "no grant" in denials.items[0].reason

    # the raw token is nowhere in the database files
    await asyncio.sleep(0.1)
    for path in stack.paths.root.glob("token-broker-audit.sqlite3*"):
        assert body["token"].encode() not in path.read_bytes()
        assert body["token"].split(".")[1].encode() not in path.read_bytes()


async def test_store_down_means_no_token_and_nothing_created(stack) -> None:
    ctx = mtls_context(stack, *stack.paths.caller_cert("jenkins"))
    await stack.broker.store.close()
    before = [
        o["metadata"]["uid"] for kind in ("serviceaccounts", "secrets") for o in await objects(stack, kind)
    ]
    status, headers, text = await post_token(stack, ctx, {"role": "deployer", "namespace": stack.namespace})
    assert status == 503, text
    assert "Retry-After" in headers
    assert json.loads(text)["detail"].startswith("audit store")
    after = [
        o["metadata"]["uid"] for kind in ("serviceaccounts", "secrets") for o in await objects(stack, kind)
    ]
    assert after == before


async def test_sigkill_between_token_request_and_record_leaves_no_working_token(
    make_stack, kubectl, tmp_path: Path
) -> None:
    # run the broker as its own process on the stack's config, so it can be killed for real
    async with make_stack(
        # a slow commit window: the record of a minted token stays uncommitted for up to a second
        audit_config="group_commit_max_delay_ms = 1000",
        # a single replica may repair its own pending records at once
        janitor_config="repair_after_seconds = 0",
    ) as stack:
        await stack.broker.stop()
        await _kill_and_repair(stack, kubectl, tmp_path)


async def _kill_and_repair(stack, kubectl, tmp_path: Path) -> None:
    cfg = stack.paths.config
    proc, url = await serve(cfg, tmp_path)
    jenkins = stack.paths.caller_cert("jenkins")
    ctx = ssl.create_default_context(cafile=str(stack.paths.server_ca))
    ctx.load_cert_chain(str(jenkins[0]), str(jenkins[1]))

    async def ask() -> None:
        async with aiohttp.ClientSession(trust_env=False) as session:
            await session.post(
                url + "/v1/tokens", json={"role": "deployer", "namespace": stack.namespace}, ssl=ctx
            )

    request = asyncio.create_task(ask())
    token_path = f"/api/v1/namespaces/{stack.namespace}/serviceaccounts/deployer/token"
    await wait_for_request(stack.cluster, lambda e: e.path == token_path and e.code == 201)
    proc.send_signal(signal.SIGKILL)
    await proc.wait()
    with pytest.raises(aiohttp.ClientError):
        await request

    # what the dead broker left: a pending record and its binding Secret
    settings = load_config(cfg).audit
    store = make_sql_store(settings)
    await store.open()
    try:
        pending = (await store.query_issuances(AuditFilter(event="pending"))).items
        assert len(pending) == 1
        token_id = pending[0].id
    finally:
        await store.close()
    selector = f"token-broker.io/token-id={token_id}"
    secrets = await objects(stack, "secrets", selector)
    assert len(secrets) == 1
    # any token bound to that Secret works right now (this one stands in for the one the broker minted)
    bound = await kubectl(
        stack.cluster.admin_kubeconfig,
        "-n",
        stack.namespace,
        "create",
        "token",
        "deployer",
        "--bound-object-kind",
        "Secret",
        "--bound-object-name",
        secrets[0]["metadata"]["name"],
        home=tmp_path,
    )
    assert bound.returncode == 0, bound.stderr
    token_kubeconfig = tmp_path / "bound.kubeconfig"
    stack.cluster.write_kubeconfig(token_kubeconfig, token=bound.stdout.strip())
    assert (await kubectl(token_kubeconfig, "auth", "whoami", home=tmp_path)).returncode == 0

    # restart: start-up repair deletes the Secret and aborts the record
    proc, _ = await serve(cfg, tmp_path)
    try:
        assert await objects(stack, "secrets", selector) == []
        await until_unauthorized(kubectl, token_kubeconfig, tmp_path)
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
    store = make_sql_store(settings)
    await store.open()
    try:
        record = await store.get_issuance(token_id)
        assert record is not None and record.event == "aborted"
        assert (await store.query_issuances(AuditFilter(event="pending"))).items == ()
    finally:
        await store.close()


async def test_revoke_makes_kubectl_fail_and_is_audited(
    stack, kubectl, tmp_path: Path, record_property
) -> None:
    ctx = mtls_context(stack, *stack.paths.caller_cert("jenkins"))
    status, _, text = await post_token(stack, ctx, {"role": "deployer", "namespace": stack.namespace})
    assert status == 201, text
    issued = json.loads(text)
    kubeconfig = tmp_path / "issued.kubeconfig"
    stack.cluster.write_kubeconfig(kubeconfig, token=issued["token"])
    assert (await kubectl(kubeconfig, "auth", "whoami", home=tmp_path)).returncode == 0

    async with aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=30)) as session:
        url = f"{stack.broker_url}/v1/tokens/{issued['token_id']}"
        async with session.delete(url, ssl=ctx) as resp:
            assert resp.status == 204, await resp.text()
        async with session.get(
            stack.broker_url + "/v1/audit", params={"token_id": issued["token_id"]}, ssl=ctx
        ) as resp:
            events = [e["event"] for e in (await resp.json())["items"]]
    assert events == ["revoked", "issued"]

    # a real kube-apiserver caches the token's earlier authentication for ~10 s: the lag is measured, bounded
    record_property("revocation_lag_seconds", await until_unauthorized(kubectl, kubeconfig, tmp_path))

    # another caller cannot even see that token
    other = mtls_context(stack, *stack.make_caller("mallory", ["ci"]))
    async with (
        aiohttp.ClientSession(trust_env=False) as session,
        session.delete(f"{stack.broker_url}/v1/tokens/{issued['token_id']}", ssl=other) as resp,
    ):
        assert resp.status == 404


async def test_short_revocable_token_dies_at_its_ttl(make_stack, kubectl, tmp_path: Path) -> None:
    # the "2-minute token" with the clock compressed: a 3-second TTL and a janitor sweeping every 0.2 s
    async with make_stack(janitor_config="interval_seconds = 0.2") as stack:
        ctx = mtls_context(stack, *stack.paths.caller_cert("jenkins"))
        status, _, text = await post_token(
            stack, ctx, {"role": "deployer", "namespace": stack.namespace, "ttl": "3s"}
        )
        assert status == 201, text
        issued = json.loads(text)
        lifetime = datetime.fromisoformat(issued["expires_at"]) - datetime.fromisoformat(issued["issued_at"])
        assert lifetime == timedelta(seconds=3)
        kubeconfig = tmp_path / "short.kubeconfig"
        stack.cluster.write_kubeconfig(kubeconfig, token=issued["token"])
        assert (await kubectl(kubeconfig, "auth", "whoami", home=tmp_path)).returncode == 0

        deadline = datetime.fromisoformat(issued["expires_at"]) + timedelta(seconds=10)
        while datetime.now(UTC) < deadline:
            record = await stack.broker.store.get_issuance(issued["token_id"])
            if record is not None and record.event == "expired":
                break
            await asyncio.sleep(0.2)
        assert record is not None and record.event == "expired"
        assert datetime.now(UTC) >= datetime.fromisoformat(issued["expires_at"])
        await until_unauthorized(kubectl, kubeconfig, tmp_path)


async def test_binding_secret_that_cannot_be_deleted_is_left_to_repair(sim_stack) -> None:
    stack = sim_stack  # the simulator's fault switch takes the API server away at the right moment

    # the API server goes away right after the binding Secret is created: the TokenRequest fails and so does
    # the clean-up; the record must stay pending so that repair (not a human) deletes the Secret later
    def outage_after_binding_secret(event: str, rtype, obj) -> None:
        if (
            event == "ADDED"
            and rtype.plural == "secrets"
            and "token-broker.io/token-id" in obj["metadata"].get("labels", {})
        ):
            stack.sim.faults.outage = True

    stack.sim.store.add_listener(outage_after_binding_secret)
    ctx = mtls_context(stack, *stack.paths.caller_cert("jenkins"))
    status, _, text = await post_token(stack, ctx, {"role": "deployer", "namespace": stack.namespace})
    assert status == 503, text
    stack.sim.store.remove_listener(outage_after_binding_secret)
    stack.sim.faults.outage = False

    store = stack.broker.store
    pending = (await store.query_issuances(AuditFilter(event="pending"))).items
    assert len(pending) == 1
    token_id = pending[0].id
    selector = f"token-broker.io/token-id={token_id}"
    assert len(stack.sim.store.list(SECRETS, stack.namespace, selector)) == 1

    assert await stack.broker.janitor.repair_pending(datetime.now(UTC)) == 1
    assert stack.sim.store.list(SECRETS, stack.namespace, selector) == []
    record = await store.get_issuance(token_id)
    assert record is not None and record.event == "aborted"
