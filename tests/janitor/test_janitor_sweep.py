"""Expiry sweeps, early revocation of short revocable tokens, ephemeral service accounts, retention."""

from __future__ import annotations

import asyncio
import contextlib
from dataclasses import replace
from datetime import timedelta

from janitor_support import (
    CLUSTER,
    NS,
    SECRETS_PATH,
    account_exists,
    binding_secret,
    bound_token,
    now,
    record_issued,
    record_pending,
    secret_exists,
    state_of,
    token_status,
)

from broker.audit import AuditFilter, SqlAuditStore
from broker.audit.records import SecretBinding
from broker.background.janitor import Janitor, SweepResult
from broker.background.leader import LeaseElector
from broker.domain.roles import Role
from broker.kube import Cluster
from broker.kube.labels import MANAGED_BY
from kubesim import KubeSim


def janitor(store: SqlAuditStore, admin: Cluster, **kwargs: object) -> Janitor:
    return Janitor(store, {CLUSTER: admin}, None, interval=0.2, **kwargs)  # type: ignore[arg-type]


async def test_sweep_ends_tokens_past_expiry_or_revoke_at(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    past_exp = await binding_secret(admin)
    past_revoke = await binding_secret(admin)
    future = await binding_secret(admin)
    expired_id = await record_issued(store, expires_at=t - timedelta(seconds=5), secret=past_exp)
    # a short revocable token: exp (the 600 s floor) ahead, but its revoke-at has passed
    revoked_id = await record_issued(
        store, expires_at=t + timedelta(minutes=9), revoke_at=t - timedelta(seconds=1), secret=past_revoke
    )
    live_id = await record_issued(
        store, expires_at=t + timedelta(minutes=9), revoke_at=t + timedelta(minutes=1), secret=future
    )
    # its Secret is already gone (deleted by hand, or a previous sweep that died before recording): fine
    gone_id = await record_issued(
        store, expires_at=t - timedelta(seconds=5), secret=SecretBinding(NS, "token-broker-gone", "uid-gone")
    )

    result = await janitor(store, admin).sweep_once(t)

    assert result.leader and not result.interrupted
    assert (result.deleted_secrets, result.expired, result.failed) == (2, 3, 0)
    assert not secret_exists(kubesim, past_exp.name) and not secret_exists(kubesim, past_revoke.name)
    assert secret_exists(kubesim, future.name)
    for token_id in (expired_id, revoked_id, gone_id):
        assert await state_of(store, token_id) == "expired"
    assert await state_of(store, live_id) == "issued"
    events = await store.query_events(AuditFilter(event="expired"))
    assert {e.id for e in events.items} == {expired_id, revoked_id, gone_id}
    # nothing left to do
    again = await janitor(store, admin).sweep_once(t)
    assert (again.deleted_secrets, again.expired, again.failed) == (0, 0, 0)


async def test_a_cluster_error_leaves_the_record_for_the_next_sweep(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    broken = await binding_secret(admin)
    fine = await binding_secret(admin)
    broken_id = await record_issued(store, expires_at=t - timedelta(seconds=10), secret=broken)
    fine_id = await record_issued(store, expires_at=t - timedelta(seconds=5), secret=fine)
    unknown_cluster = await record_issued(
        store, expires_at=t - timedelta(seconds=5), secret=SecretBinding(NS, "x", "y"), cluster="elsewhere"
    )
    worker = janitor(store, admin)

    kubesim.faults.path_prefix = f"{SECRETS_PATH}/{broken.name}"
    kubesim.faults.outage = True
    result = await worker.sweep_once(t)
    # one failure does not stop the others
    assert (result.deleted_secrets, result.expired, result.failed) == (1, 1, 2)
    assert await state_of(store, broken_id) == "issued" and secret_exists(kubesim, broken.name)
    assert await state_of(store, fine_id) == "expired"
    assert await state_of(store, unknown_cluster) == "issued"

    kubesim.faults.clear()
    result = await worker.sweep_once(t)
    assert (result.deleted_secrets, result.expired, result.failed) == (1, 1, 1)
    assert await state_of(store, broken_id) == "expired" and not secret_exists(kubesim, broken.name)


async def test_a_replica_that_is_not_leader_does_nothing(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    secret = await binding_secret(admin)
    token_id = await record_issued(store, expires_at=t - timedelta(seconds=5), secret=secret)
    elector = LeaseElector(
        admin.leases,
        namespace=NS,
        name="janitor",
        identity="a",
        lease_duration=1.5,
        renew_deadline=1,
        retry_period=0.2,
    )
    seen: list[SweepResult] = []
    worker = Janitor(store, lambda: {CLUSTER: admin}, elector, interval=0.2, on_sweep=seen.append)

    result = await worker.sweep_once(t)
    assert result == seen[0] and not result.leader and result.expired == 0
    assert secret_exists(kubesim, secret.name) and await state_of(store, token_id) == "issued"

    assert await elector.try_acquire_or_renew() is True
    result = await worker.sweep_once(t)
    assert result.leader and result.expired == 1 and not secret_exists(kubesim, secret.name)
    assert seen == [seen[0], result]


async def test_a_short_revocable_token_stops_working_at_its_revoke_at(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    secret = await binding_secret(admin)
    token = await bound_token(admin, secret)  # a real 600 s token (the TokenRequest floor)
    revoke_at = now() + timedelta(seconds=2)
    token_id = await record_issued(
        store, expires_at=now() + timedelta(seconds=600), revoke_at=revoke_at, secret=secret
    )
    results: list[SweepResult] = []
    task = asyncio.create_task(janitor(store, admin, on_sweep=results.append).run())
    try:
        # the janitor runs, but the token is good until its revoke-at
        await asyncio.sleep(0.5)
        assert now() < revoke_at
        assert await token_status(kubesim, token) != 401
        assert len(results) >= 2 and all(r.expired == 0 for r in results)
        async with asyncio.timeout(10):
            while (status := await token_status(kubesim, token)) != 401:
                await asyncio.sleep(0.05)
            # the Secret goes first, the record follows: let the sweep finish before stopping the janitor
            while await state_of(store, token_id) != "expired":
                await asyncio.sleep(0.05)
        assert now() >= revoke_at
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
    assert status == 401
    assert await state_of(store, token_id) == "expired"
    assert not secret_exists(kubesim, secret.name)


def role(name: str, account: str, *, ephemeral: bool = True) -> Role:
    return Role(
        name=name,
        cluster=CLUSTER,
        service_account=account,
        namespaces=(NS,),
        revocable=True,
        ephemeral_service_account=ephemeral,
    )


async def test_an_ephemeral_account_goes_with_its_last_token(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    roles = {"build": role("build", "builder")}
    first = await binding_secret(admin, account="builder", role="build")
    second = await binding_secret(admin, account="builder", role="build")
    await record_issued(
        store, expires_at=t - timedelta(seconds=5), secret=first, role="build", account="builder"
    )
    last_id = await record_issued(
        store, expires_at=t + timedelta(minutes=2), secret=second, role="build", account="builder"
    )
    worker = janitor(store, admin, roles=lambda: roles)

    result = await worker.sweep_once(t)
    # one token of the account is still live: the account stays
    assert result.expired == 1 and result.deleted_service_accounts == 0
    assert account_exists(kubesim, "builder")

    # an issuance for the account under way (pending) also keeps it
    pending_id = await record_pending(store, begun=t, role="build", account="builder")
    later = t + timedelta(minutes=3)
    result = await worker.sweep_once(later)
    assert result.expired == 1 and result.deleted_service_accounts == 0
    assert await state_of(store, last_id) == "expired"
    assert account_exists(kubesim, "builder")

    await store.fail_issuance(pending_id, "upstream error")
    third = await binding_secret(admin, account="builder", role="build")
    await record_issued(
        store, expires_at=t + timedelta(minutes=2), secret=third, role="build", account="builder"
    )
    result = await worker.sweep_once(later)
    assert result.expired == 1 and result.deleted_service_accounts == 1
    assert not account_exists(kubesim, "builder")


async def test_only_broker_managed_ephemeral_accounts_are_deleted(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    roles = {
        "handmade": role("handmade", "handmade"),
        "shared-eph": role("shared-eph", "shared"),
        "shared-keep": role("shared-keep", "shared", ephemeral=False),
        "plain": role("plain", "plain", ephemeral=False),
    }
    # an account someone else made (no managed-by label)
    await admin.accounts.ensure(NS, "handmade")
    handmade_secret = await admin.secrets.create_binding(NS, service_account="handmade")
    await record_issued(
        store,
        expires_at=t - timedelta(seconds=1),
        secret=handmade_secret,
        role="handmade",
        account="handmade",
    )
    # an account another, non-ephemeral role also uses
    shared_secret = await binding_secret(admin, account="shared", role="shared-eph")
    await record_issued(
        store, expires_at=t - timedelta(seconds=1), secret=shared_secret, role="shared-eph", account="shared"
    )
    # a non-ephemeral role
    plain_secret = await binding_secret(admin, account="plain", role="plain")
    await record_issued(
        store, expires_at=t - timedelta(seconds=1), secret=plain_secret, role="plain", account="plain"
    )

    result = await janitor(store, admin, roles=lambda: roles).sweep_once(t)
    assert result.expired == 3 and result.deleted_service_accounts == 0
    assert (
        account_exists(kubesim, "handmade")
        and account_exists(kubesim, "shared")
        and account_exists(kubesim, "plain")
    )


async def test_an_ephemeral_account_of_unbound_tokens_goes_after_their_exp(
    kubesim: KubeSim, admin: Cluster, store: SqlAuditStore
) -> None:
    t = now()
    roles = {"short": replace(role("short", "runner"), revocable=False)}
    await admin.accounts.ensure(NS, "runner", labels=MANAGED_BY)
    ended = await record_issued(store, expires_at=t - timedelta(seconds=1), role="short", account="runner")
    result = await janitor(store, admin, roles=lambda: roles).sweep_once(t)
    assert (result.expired, result.deleted_secrets, result.deleted_service_accounts) == (1, 0, 1)
    assert await state_of(store, ended) == "expired"
    assert not account_exists(kubesim, "runner")


async def test_retention_runs_at_most_hourly(admin: Cluster, store: SqlAuditStore) -> None:
    t = now()
    ticks = [0.0]

    async def old_failure() -> None:
        token_id = await record_pending(store, begun=t - timedelta(days=3))
        await store.fail_issuance(token_id, "upstream error", at=t - timedelta(days=3))

    await old_failure()
    worker = janitor(store, admin, monotonic=lambda: ticks[0], repair_after=timedelta(days=30))
    first = await worker.sweep_once(t)
    assert first.retention_deleted == 2  # the issuance and its event

    await old_failure()
    ticks[0] += 3599
    assert (await worker.sweep_once(t)).retention_deleted == 0
    ticks[0] += 1
    assert (await worker.sweep_once(t)).retention_deleted == 2
