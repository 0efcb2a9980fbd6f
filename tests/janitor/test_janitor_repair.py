"""Start-up repair: a pending issuance left by a crash loses its bound Secret (and so its token) and is aborted."""

from __future__ import annotations

import uuid
from datetime import timedelta

from janitor_support import (
    CLUSTER,
    SECRETS_PATH,
    binding_secret,
    bound_token,
    now,
    record_pending,
    secret_exists,
    state_of,
    token_status,
)

from broker.audit import AuditFilter, SqlAuditStore
from broker.background.janitor import REPAIR_REASON, Janitor
from broker.kube import Cluster
from kubesim import KubeSim


async def test_repair_deletes_the_labelled_secret_and_aborts(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    # the issuer committed the pending record, made the Secret, got the token ... and the broker died
    token_id = await record_pending(store, begun=t - timedelta(minutes=2))
    secret = await binding_secret(admin, token_id=token_id)
    token = await bound_token(admin, secret)
    assert await token_status(kubesim, token) != 401
    # a Secret of another issuance, and a pending issuance too recent to be judged dead
    other = await binding_secret(admin, token_id=str(uuid.uuid4()))
    recent_id = await record_pending(store, begun=t)
    recent_secret = await binding_secret(admin, token_id=recent_id)

    worker = Janitor(store, {CLUSTER: admin}, None, interval=1)
    assert await worker.repair_pending(t - timedelta(minutes=1)) == 1

    assert not secret_exists(kubesim, secret.name)
    assert await token_status(kubesim, token) == 401
    record = await store.get_issuance(token_id)
    assert record is not None and record.event == "aborted" and record.reason == REPAIR_REASON
    events = await store.query_events(AuditFilter(token_id=token_id))
    assert [e.event for e in events.items] == ["aborted"]
    assert secret_exists(kubesim, other.name) and secret_exists(kubesim, recent_secret.name)
    assert await state_of(store, recent_id) == "pending"

    # idempotent: a second start (or another replica) finds nothing to do
    assert await worker.repair_pending(t - timedelta(minutes=1)) == 0


async def test_a_pending_issuance_that_never_made_its_secret_is_aborted(
    admin: Cluster, store: SqlAuditStore
) -> None:
    token_id = await record_pending(store, begun=now() - timedelta(minutes=2))
    worker = Janitor(store, {CLUSTER: admin}, None, interval=1)
    assert await worker.repair_pending(now()) == 1
    assert await state_of(store, token_id) == "aborted"


async def test_a_failed_deletion_keeps_the_record_pending(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    token_id = await record_pending(store, begun=now() - timedelta(minutes=2))
    secret = await binding_secret(admin, token_id=token_id)
    unknown_cluster = await record_pending(store, begun=now() - timedelta(minutes=2), cluster="elsewhere")
    worker = Janitor(store, {CLUSTER: admin}, None, interval=1)

    kubesim.faults.path_prefix = SECRETS_PATH
    kubesim.faults.outage = True
    assert await worker.repair_pending(now()) == 0
    assert await state_of(store, token_id) == "pending"
    assert await state_of(store, unknown_cluster) == "pending"

    kubesim.faults.clear()
    assert await worker.repair_pending(now()) == 1
    assert await state_of(store, token_id) == "aborted" and not secret_exists(kubesim, secret.name)
    assert await state_of(store, unknown_cluster) == "pending"


async def test_the_sweep_repairs_issuances_pending_for_too_long(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    stale_id = await record_pending(store, begun=t - timedelta(minutes=11))
    stale_secret = await binding_secret(admin, token_id=stale_id)
    fresh_id = await record_pending(store, begun=t - timedelta(minutes=1))
    fresh_secret = await binding_secret(admin, token_id=fresh_id)

    result = await Janitor(store, {CLUSTER: admin}, None, interval=1).sweep_once(t)
    assert result.repaired == 1 and result.failed == 0
    assert await state_of(store, stale_id) == "aborted" and not secret_exists(kubesim, stale_secret.name)
    assert await state_of(store, fresh_id) == "pending" and secret_exists(kubesim, fresh_secret.name)
