"""Lease-based leader election against the simulator (client-go leaderelection semantics)."""

from __future__ import annotations

import asyncio
import contextlib
import re
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import datetime

import pytest
from janitor_support import LEASES_PATH, NS, lease_spec, wait_for

from broker.background.leader import LeaseElector, micro_time
from broker.kube import Cluster
from kubesim import KubeSim

LEASE = "janitor"
# short timings: the holder gives up 1 s after its last renewal, others wait 2 s (1.5 rounded up) after
# they last saw the Lease change
DURATION, DEADLINE, RETRY = 1.5, 1.0, 0.2
MICRO_TIME = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}\.\d{6}Z$")


@dataclass
class Candidate:
    elector: LeaseElector
    changes: list[tuple[float, bool]] = field(default_factory=list)
    task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self.task = asyncio.create_task(self.elector.run())

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.task
            self.task = None

    def acquired_at(self) -> list[float]:
        return [t for t, leader in self.changes if leader]


@pytest.fixture
async def candidates(admin: Cluster) -> AsyncIterator[Callable[..., Candidate]]:
    made: list[Candidate] = []

    def make(identity: str, **kwargs: object) -> Candidate:
        changes: list[tuple[float, bool]] = []
        elector = LeaseElector(
            admin.leases,
            namespace=NS,
            name=LEASE,
            identity=identity,
            lease_duration=DURATION,
            renew_deadline=DEADLINE,
            retry_period=RETRY,
            on_change=lambda leader: changes.append((time.monotonic(), leader)),
            **kwargs,  # type: ignore[arg-type]
        )
        candidate = Candidate(elector, changes)
        made.append(candidate)
        return candidate

    yield make
    for candidate in made:
        await candidate.stop()


def test_timings_must_leave_the_holder_time_to_step_down(admin: Cluster) -> None:
    with pytest.raises(ValueError, match="renew_deadline < lease_duration"):
        LeaseElector(
            admin.leases,
            namespace=NS,
            name=LEASE,
            identity="a",
            lease_duration=1,
            renew_deadline=1,
            retry_period=0.2,
        )


def test_micro_time_format() -> None:
    assert micro_time(0) == "1970-01-01T00:00:00.000000Z"
    assert micro_time(1735689600.25) == "2025-01-01T00:00:00.250000Z"


async def test_one_leader_while_it_renews(kubesim: KubeSim, candidates: Callable[..., Candidate]) -> None:
    a, b = candidates("replica-a"), candidates("replica-b")
    a.start()
    b.start()
    await wait_for(lambda: a.elector.is_leader or b.elector.is_leader, timeout=10)
    leader, other = (a, b) if a.elector.is_leader else (b, a)
    first = lease_spec(kubesim, LEASE)
    assert first is not None

    # well past the lease duration: the leader keeps renewing, so the other never takes over
    await asyncio.sleep(DURATION * 2)
    assert leader.elector.still_leader() and not other.elector.is_leader
    assert other.changes == []
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None
    assert spec["holderIdentity"] == leader.elector.identity
    assert spec["leaseDurationSeconds"] == 2  # int32 seconds, rounded up
    assert spec["leaseTransitions"] == 0
    assert isinstance(spec["renewTime"], str) and MICRO_TIME.match(spec["renewTime"])
    assert isinstance(spec["acquireTime"], str) and MICRO_TIME.match(spec["acquireTime"])
    assert spec["acquireTime"] == first["acquireTime"]
    assert spec["renewTime"] > str(first["renewTime"])
    assert other.elector.holder == leader.elector.identity


async def test_a_dead_leader_is_replaced_after_the_lease_duration(
    kubesim: KubeSim, candidates: Callable[..., Candidate]
) -> None:
    a, b = candidates("replica-a"), candidates("replica-b")
    a.start()
    await wait_for(lambda: a.elector.is_leader, timeout=10)
    b.start()
    await asyncio.sleep(RETRY * 3)  # b has seen a's Lease
    assert not b.elector.is_leader

    # a stops renewing without releasing (a crash): the Lease still names it
    await a.stop()
    last_renewal = a.elector.renewed_at
    assert last_renewal is not None and not a.elector.still_leader()
    await wait_for(lambda: b.elector.is_leader, timeout=10)
    # b only took over once the Lease had gone unrenewed for the whole (rounded-up) lease duration
    assert b.acquired_at()[0] >= last_renewal + 2.0
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None
    assert spec["holderIdentity"] == "replica-b"
    assert spec["leaseTransitions"] == 1


async def test_release_hands_over_at_once(kubesim: KubeSim, candidates: Callable[..., Candidate]) -> None:
    a, b = candidates("replica-a"), candidates("replica-b")
    a.start()
    await wait_for(lambda: a.elector.is_leader, timeout=10)
    assert await b.elector.try_acquire_or_renew() is False

    await a.stop()
    # stopped but not released: the Lease is a's until it expires
    assert await b.elector.try_acquire_or_renew() is False
    assert await a.elector.release() is True
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None and spec["holderIdentity"] == ""
    # released: the very next attempt takes it, no waiting for the lease duration
    assert await b.elector.try_acquire_or_renew() is True
    assert b.elector.still_leader()
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None and spec["holderIdentity"] == "replica-b" and spec["leaseTransitions"] == 1
    # a release by a former holder changes nothing any more
    assert await a.elector.release() is False
    assert lease_spec(kubesim, LEASE) == spec


async def test_expiry_is_judged_by_the_local_clock(
    kubesim: KubeSim, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a")
    assert await a.elector.try_acquire_or_renew() is True
    ticks = [1000.0]
    # b's own monotonic clock, and a wall clock far in the future: the holder's renewTime is irrelevant
    b = candidates("replica-b", monotonic=lambda: ticks[0], clock=lambda: time.time() + 86400)
    assert await b.elector.try_acquire_or_renew() is False  # first sight: the countdown starts now
    ticks[0] += 1.9
    assert await b.elector.try_acquire_or_renew() is False
    ticks[0] += 0.1  # 2.0 s (1.5 rounded up, as the Lease says) without a change
    assert await b.elector.try_acquire_or_renew() is True
    assert a.elector.is_leader  # a has not noticed yet ...
    assert await a.elector.try_acquire_or_renew() is False  # ... and does at its next renewal
    assert not a.elector.is_leader and a.elector.holder == "replica-b"


async def test_a_stale_resource_version_loses(
    kubesim: KubeSim, admin: Cluster, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a")
    assert await a.elector.try_acquire_or_renew() is True
    # somebody else writes the Lease after a read it
    current = await admin.leases.get(NS, LEASE)
    assert current is not None
    intruder = dict(
        current, spec={**current["spec"], "holderIdentity": "intruder", "renewTime": micro_time(time.time())}
    )
    await admin.leases.update(NS, LEASE, intruder)
    # a's renewal is based on the version it wrote: 409, then it reads the Lease and sees it is not the holder
    assert await a.elector.try_acquire_or_renew() is False
    assert not a.elector.is_leader and not a.elector.still_leader()
    conflicts = [e for e in kubesim.audit_events if e.method == "PUT" and e.path == f"{LEASES_PATH}/{LEASE}"]
    assert [e.code for e in conflicts][-1] == 409
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None and spec["holderIdentity"] == "intruder"


async def test_concurrent_candidates_have_one_winner(
    kubesim: KubeSim, candidates: Callable[..., Candidate]
) -> None:
    electors = [candidates(f"replica-{i}").elector for i in range(4)]
    results = await asyncio.gather(*(e.try_acquire_or_renew() for e in electors))
    assert sorted(results) == [False, False, False, True]
    winner = electors[results.index(True)]
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None and spec["holderIdentity"] == winner.identity


async def test_the_leader_steps_down_before_its_lease_can_expire(
    kubesim: KubeSim, candidates: Callable[..., Candidate]
) -> None:
    a = candidates("replica-a")
    a.start()
    await wait_for(lambda: a.elector.is_leader, timeout=10)
    await asyncio.sleep(RETRY * 2)
    kubesim.faults.path_prefix = LEASES_PATH
    kubesim.faults.outage = True
    await wait_for(lambda: not a.elector.is_leader, timeout=10)
    stepped_down = time.time()
    assert not a.elector.still_leader()
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None and spec["holderIdentity"] == "replica-a"
    renewed = datetime.fromisoformat(str(spec["renewTime"])).timestamp()
    duration = spec["leaseDurationSeconds"]
    assert isinstance(duration, int)
    # nobody else could have taken the Lease yet when a stopped acting
    assert stepped_down < renewed + duration

    # the API server comes back: a is still the holder and simply carries on
    kubesim.faults.clear()
    await wait_for(lambda: a.elector.is_leader, timeout=10)
    spec = lease_spec(kubesim, LEASE)
    assert spec is not None and spec["holderIdentity"] == "replica-a" and spec["leaseTransitions"] == 0
