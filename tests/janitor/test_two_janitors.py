"""Two janitors against one API server never both act, while leadership moves between them.

Each replica reaches the simulator through its own TCP relay, so one replica can be partitioned from the API
server (its requests hang, as across a broken network) while the other still reaches it. Leadership is made
to move by partitioning the leader, by stopping its elector without releasing (a crash), and by a release (a
clean shutdown). Every sweep a replica runs as leader is recorded as a (start, end) interval on the shared
monotonic clock; no two intervals of different replicas may overlap.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import pytest
from janitor_support import (
    CLUSTER,
    NS,
    SECRETS_PATH,
    MakeClient,
    Relay,
    binding_secret,
    now,
    record_issued,
    wait_for,
)

from broker.audit import SqlAuditStore
from broker.background.janitor import Janitor, SweepResult
from broker.background.leader import LeaseElector
from broker.kube import Cluster, RetryPolicy
from kubesim import KubeSim

DURATION, DEADLINE, RETRY = 1.5, 1.0, 0.2
QUICK = RetryPolicy(attempts=2, max_elapsed=1.0, base_backoff=0.01, max_backoff=0.02, max_retry_after=0.5)


@dataclass
class Replica:
    name: str
    relay: Relay
    elector: LeaseElector
    janitor: Janitor
    sweeps: list[SweepResult] = field(default_factory=list)
    elector_task: asyncio.Task[None] | None = None
    janitor_task: asyncio.Task[None] | None = None

    def start_elector(self) -> None:
        self.elector_task = asyncio.create_task(self.elector.run())

    async def stop_elector(self) -> None:
        await _cancel(self.elector_task)
        self.elector_task = None

    def start(self) -> None:
        self.start_elector()
        self.janitor_task = asyncio.create_task(self.janitor.run())

    async def stop(self) -> None:
        await _cancel(self.janitor_task)
        await self.stop_elector()


async def _cancel(task: asyncio.Task[None] | None) -> None:
    if task is not None:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task


@pytest.fixture
async def relays() -> AsyncIterator[list[Relay]]:
    made: list[Relay] = []
    yield made
    for relay in made:
        await relay.close()


async def make_replica(
    name: str,
    kubesim: KubeSim,
    store: SqlAuditStore,
    make_client: MakeClient,
    tmp_path: Path,
    relays: list[Relay],
) -> Replica:
    relay = await Relay(kubesim).start()
    relays.append(relay)
    client: Cluster = await make_client(
        relay.kubeconfig(kubesim, tmp_path / f"{name}.kubeconfig"), request_timeout=3.0, retry=QUICK
    )
    elector = LeaseElector(
        client.leases,
        namespace=NS,
        name="janitor",
        identity=f"replica-{name}",
        lease_duration=DURATION,
        renew_deadline=DEADLINE,
        retry_period=RETRY,
    )
    sweeps: list[SweepResult] = []

    def record(result: SweepResult) -> None:
        if result.leader:
            sweeps.append(result)

    janitor = Janitor(store, {CLUSTER: client}, elector, interval=0.05, on_sweep=record)
    return Replica(name, relay, elector, janitor, sweeps)


def leader_of(replicas: list[Replica]) -> Replica | None:
    leaders = [r for r in replicas if r.elector.still_leader()]
    assert len(leaders) <= 1, "two replicas consider themselves leader"
    return leaders[0] if leaders else None


async def wait_for_leader(replicas: list[Replica], *, other_than: Replica | None = None) -> Replica:
    found: list[Replica] = []

    def check() -> bool:
        leader = leader_of(replicas)
        if leader is not None and leader is not other_than:
            found.append(leader)
            return True
        return False

    await wait_for(check, timeout=15)
    return found[0]


async def test_two_janitors_never_both_act(
    kubesim: KubeSim,
    admin: Cluster,
    store: SqlAuditStore,
    make_client: MakeClient,
    tmp_path: Path,
    relays: list[Relay],
) -> None:
    replicas = [await make_replica(n, kubesim, store, make_client, tmp_path, relays) for n in ("a", "b")]
    # deleting a Secret takes a little while, so sweeps are long enough to straddle a change of leader
    kubesim.faults.path_prefix = f"{SECRETS_PATH}/"
    kubesim.faults.latency = 0.03
    created: list[str] = []

    async def feed() -> None:
        # tokens keep expiring, so every leader sweep has Secrets to delete
        while True:
            secret = await binding_secret(admin)
            created.append(await record_issued(store, expires_at=now() - timedelta(seconds=1), secret=secret))
            await asyncio.sleep(0.05)

    feeder = asyncio.create_task(feed())
    leaders: list[str] = []
    try:
        for replica in replicas:
            replica.start()
        first = await wait_for_leader(replicas)
        leaders.append(first.name)

        # 1. the leader is cut off from the API server: it stops acting, the other takes over
        await asyncio.sleep(0.5)
        first.relay.cut()
        second = await wait_for_leader(replicas, other_than=first)
        leaders.append(second.name)
        await asyncio.sleep(0.3)
        first.relay.heal()

        # 2. the leader crashes (its elector stops, the Lease is not released): taken over after it expires
        await asyncio.sleep(0.5)
        await second.stop_elector()
        third = await wait_for_leader(replicas, other_than=second)
        leaders.append(third.name)
        second.start_elector()

        # 3. the leader shuts down cleanly and releases: taken over at once
        await asyncio.sleep(0.5)
        await third.stop_elector()
        assert await third.elector.release()
        fourth = await wait_for_leader(replicas, other_than=third)
        leaders.append(fourth.name)
        third.start_elector()

        # 4. a partition shorter than the renew deadline: nothing needs to change
        await asyncio.sleep(0.3)
        fourth.relay.cut()
        await asyncio.sleep(DEADLINE / 3)
        fourth.relay.heal()
        await asyncio.sleep(0.5)
    finally:
        await _cancel(feeder)
        for replica in replicas:
            await replica.stop()
            replica.relay.heal()
        kubesim.faults.clear()

    assert len(leaders) == 4 and leaders[0] != leaders[1] != leaders[2] != leaders[3]
    a, b = replicas
    assert a.sweeps and b.sweeps
    assert any(s.deleted_secrets for s in a.sweeps) and any(s.deleted_secrets for s in b.sweeps)
    overlaps = [
        (x, y) for x in a.sweeps for y in b.sweeps if x.started < y.finished and y.started < x.finished
    ]
    assert overlaps == []

    # whatever was left half-done (a Secret deleted, its record not yet marked) the next leader finishes; the
    # last leader still holds the Lease, so it resumes at once
    survivor = fourth
    survivor.start()
    try:
        await wait_for_leader([survivor])
        async with asyncio.timeout(15):
            while await store.due_for_cleanup(now()):
                await asyncio.sleep(0.1)
    finally:
        await survivor.stop()
    for token_id in created:
        record = await store.get_issuance(token_id)
        assert record is not None and record.event == "expired"
