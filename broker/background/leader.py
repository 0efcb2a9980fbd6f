"""Leader election through a coordination.k8s.io Lease, modelled on client-go tools/leaderelection.

How it stays safe (client-go leaderelection/doc.go): nobody trusts another replica's clock. A candidate
treats the Lease as expired only when the record has not changed for leaseDurationSeconds as measured on its
own monotonic clock since it last saw it change; the holder stops acting when its own last successful renewal
is older than renew_deadline. With lease_duration > renew_deadline the holder has stepped down before any
candidate may take over, whatever the clock offsets (only a difference in clock *rates* beyond
lease_duration / renew_deadline could break this). Takeovers are writes conditional on the resourceVersion
just read, so of two candidates exactly one wins and the other gets 409 Conflict.

Deviation from a naive reading of the Lease: spec.renewTime is written (MicroTime) for humans and kubectl, but
expiry is judged by local observation as client-go does, not by comparing renewTime with our clock.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import math
import random
import socket
import time
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from typing import Any

from broker._kits.rfc3339 import format_time
from broker.domain.errors import BrokerError
from broker.kube.leases import LeaseConflict, Leases

log = logging.getLogger(__name__)


# candidates poll every retry_period stretched by up to this share (client-go wait.JitterUntil), so replicas
# started together do not hit the API server in lockstep
JITTER = 0.2


class NotLeader(Exception):
    """This replica is not (or no longer) the leader: the step was not started, or was cut short."""


def micro_time(seconds: float) -> str:
    """A Unix time as metav1.MicroTime: "2006-01-02T15:04:05.000000Z"."""
    return format_time(datetime.fromtimestamp(seconds, UTC), "microseconds")


def default_identity() -> str:
    """hostname_uuid, client-go's convention: unique per process even when pods share a hostname."""
    return f"{socket.gethostname()}_{uuid.uuid4()}"


def _spec(lease: dict[str, Any]) -> dict[str, Any]:
    spec = lease.get("spec")
    return spec if isinstance(spec, dict) else {}


def _metadata(lease: dict[str, Any]) -> dict[str, Any]:
    meta = lease.get("metadata")
    return meta if isinstance(meta, dict) else {}


def _int(value: Any, default: int) -> int:
    return value if isinstance(value, int) and not isinstance(value, bool) else default


class LeaseElector:
    """Campaigns for one Lease and keeps it while renewals succeed.

    `run()` loops forever (cancel it to stop); `still_leader()` is the check to make right before acting;
    `release()` after cancelling `run()` hands the Lease over at once (client-go ReleaseOnCancel).
    `on_change(True|False)` is called on every change of leadership.
    """

    def __init__(
        self,
        leases: Leases,
        *,
        namespace: str,
        name: str,
        identity: str,
        lease_duration: float,
        renew_deadline: float,
        retry_period: float,
        clock: Callable[[], float] = time.time,
        monotonic: Callable[[], float] = time.monotonic,
        on_change: Callable[[bool], None] | None = None,
    ) -> None:
        if not identity:
            raise ValueError("a leader election identity must not be empty")
        if not 0 < retry_period < renew_deadline < lease_duration:
            # client-go NewLeaderElector refuses the same: the holder must give up before others may take over
            raise ValueError("need 0 < retry_period < renew_deadline < lease_duration")
        self._leases = leases
        self.namespace = namespace
        self.name = name
        self.identity = identity
        self.lease_duration = lease_duration
        self.renew_deadline = renew_deadline
        self.retry_period = retry_period
        # spec.leaseDurationSeconds is an int32: round up, never down (client-go truncates, which would
        # let a candidate with a fractional configuration take over before the holder's renew deadline)
        self._duration_seconds = max(1, math.ceil(lease_duration))
        self._clock = clock
        self._monotonic = monotonic
        self._on_change = on_change
        self._leader = False
        # monotonic time at which the last successful acquire/renew *began*: the write happened after it
        self._renewed_at: float | None = None
        # the last Lease we read or wrote, and when (local monotonic time) we last saw it change
        self._lease: dict[str, Any] | None = None
        self._observed_version: str | None = None
        self._observed_at = 0.0
        # bodies running under leading(): cut short the moment leadership ends, extended when it is renewed
        self._scopes: set[asyncio.Timeout] = set()

    # -- state -------------------------------------------------------------------------------------------------
    @property
    def is_leader(self) -> bool:
        return self._leader

    @property
    def holder(self) -> str | None:
        """The holderIdentity of the Lease as last seen ("" when released, None before the first read)."""
        if self._lease is None:
            return None
        holder = _spec(self._lease).get("holderIdentity")
        return holder if isinstance(holder, str) else ""

    @property
    def renewed_at(self) -> float | None:
        """Monotonic time at which the last successful acquire or renew began (None: never)."""
        return self._renewed_at

    def leadership_remaining(self) -> float:
        """Seconds this replica may still act as leader by its own clock; 0 when it is not the leader."""
        if not self._leader or self._renewed_at is None:
            return 0.0
        return max(0.0, self._renewed_at + self.renew_deadline - self._monotonic())

    def still_leader(self) -> bool:
        """Leader, and the last successful renewal lies within renew_deadline: safe to act right now."""
        return self.leadership_remaining() > 0

    @contextlib.asynccontextmanager
    async def leading(self) -> AsyncIterator[None]:
        """Run the body only as leader: NotLeader at once when not, and the body is cancelled (NotLeader) as
        soon as leadership ends — the renew deadline passing unrenewed, a step-down, or release()."""
        remaining = self.leadership_remaining()
        if remaining <= 0:
            raise NotLeader
        scope = asyncio.timeout(remaining)
        self._scopes.add(scope)
        try:
            async with scope:
                yield
        except TimeoutError:
            if scope.expired():
                raise NotLeader from None
            raise
        finally:
            self._scopes.discard(scope)

    def _reschedule_scopes(self) -> None:
        if not self._scopes:
            return
        when = asyncio.get_running_loop().time() + self.leadership_remaining()
        for scope in self._scopes:
            if not scope.expired():  # an expiring scope is already on its way out
                scope.reschedule(when)

    def _set_leader(self, leader: bool) -> None:
        if leader == self._leader:
            return
        self._leader = leader
        if not leader:
            self._reschedule_scopes()  # remaining is 0 now: cut every body short
        if leader:
            log.info("became janitor leader", extra={"lease": f"{self.namespace}/{self.name}"})
        else:
            log.warning("stopped being janitor leader", extra={"lease": f"{self.namespace}/{self.name}"})
        if self._on_change is not None:
            try:
                self._on_change(leader)
            except Exception:
                log.exception("leader election on_change hook failed")

    # -- one attempt ---------------------------------------------------------------------------------------------
    async def try_acquire_or_renew(self) -> bool:
        """One round of client-go's tryAcquireOrRenew: True when we hold the Lease afterwards.

        The holder first updates its cached copy directly (one call instead of GET + PUT); a 409 there, or any
        candidate, reads the Lease and writes itself in only when it is absent, released, expired or already
        ours. Failures of the API server are a False, never an exception.
        """
        started = self._monotonic()
        now = micro_time(self._clock())
        try:
            if self._leader and self._lease is not None and self.holder == self.identity:
                try:
                    self._succeeded(await self._leases.update(*self._key, self._renewal(now)), started)
                    return True
                except LeaseConflict:
                    pass  # somebody else wrote the Lease: read it to find out who
            current = await self._leases.get(*self._key)
            if current is None:
                created = await self._leases.create(self.namespace, self._fresh(now))
                self._succeeded(created, started)
                return True
            self._observe(current)
            holder = self.holder
            if holder and holder != self.identity:
                # someone else holds it: whatever our deadline says, we are not the leader any more
                self._set_leader(False)
                if not self._expired(current):
                    return False
            self._succeeded(await self._leases.update(*self._key, self._takeover(current, now)), started)
            return True
        except LeaseConflict:
            log.debug("lost a lease write race", extra={"lease": f"{self.namespace}/{self.name}"})
            return False
        except BrokerError as exc:
            log.debug(
                "lease call failed", extra={"lease": f"{self.namespace}/{self.name}", "error": exc.detail}
            )
            return False

    @property
    def _key(self) -> tuple[str, str]:
        return self.namespace, self.name

    def _observe(self, lease: dict[str, Any]) -> None:
        version = _metadata(lease).get("resourceVersion")
        if version != self._observed_version:
            # client-go setObservedRecord: expiry counts from when *we* saw the record change
            self._observed_version = version if isinstance(version, str) else None
            self._observed_at = self._monotonic()
        self._lease = lease

    def _succeeded(self, lease: dict[str, Any], started: float) -> None:
        self._observe(lease)
        self._renewed_at = started
        self._set_leader(True)
        self._reschedule_scopes()

    def _expired(self, lease: dict[str, Any]) -> bool:
        # the longer of the holder's stated duration and ours: a holder configured with a longer lease is
        # honoured, and a shorter one cannot make us cut into our own safety margin
        stated = _int(_spec(lease).get("leaseDurationSeconds"), 0)
        return self._monotonic() >= self._observed_at + max(float(stated), self.lease_duration)

    def _body(self, metadata: dict[str, Any], spec: dict[str, Any]) -> dict[str, Any]:
        return {"apiVersion": "coordination.k8s.io/v1", "kind": "Lease", "metadata": metadata, "spec": spec}

    def _fresh(self, now: str) -> dict[str, Any]:
        spec = {
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._duration_seconds,
            "acquireTime": now,
            "renewTime": now,
            "leaseTransitions": 0,
        }
        return self._body({"name": self.name, "namespace": self.namespace}, spec)

    def _renewal(self, now: str) -> dict[str, Any]:
        assert self._lease is not None
        spec = {**_spec(self._lease), "renewTime": now, "leaseDurationSeconds": self._duration_seconds}
        return self._body(dict(_metadata(self._lease)), spec)

    def _takeover(self, current: dict[str, Any], now: str) -> dict[str, Any]:
        old = _spec(current)
        ours = old.get("holderIdentity") == self.identity
        transitions = _int(old.get("leaseTransitions"), 0)
        spec = {
            **old,
            "holderIdentity": self.identity,
            "leaseDurationSeconds": self._duration_seconds,
            "renewTime": now,
            # client-go keeps acquireTime and leaseTransitions when renewing its own record, else counts a
            # transition (also after a release, when the holder was empty)
            "acquireTime": (old.get("acquireTime") or now) if ours else now,
            "leaseTransitions": transitions if ours else transitions + 1,
        }
        return self._body(dict(_metadata(current)), spec)

    # -- the loop ----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Campaign, lead while renewals succeed, campaign again after losing the Lease; until cancelled."""
        try:
            while True:
                await self._acquire()
                await self._renew()
        finally:
            self._set_leader(False)

    async def _attempt(self, limit: float) -> bool:
        # a hung call must not outlive the time we have: the transport's timeout may be longer
        try:
            async with asyncio.timeout(limit):
                return await self.try_acquire_or_renew()
        except TimeoutError:
            return False

    async def _acquire(self) -> None:
        while True:
            if await self._attempt(self.renew_deadline):
                return
            await asyncio.sleep(self.retry_period * (1 + JITTER * random.random()))  # noqa: S311 - jitter

    async def _renew(self) -> None:
        """Renew every retry_period; give up once renewals have failed for renew_deadline (client-go renew)."""
        while True:
            await asyncio.sleep(self.retry_period)
            while True:
                remaining = self.leadership_remaining()
                if remaining <= 0 or not self._leader:
                    self._set_leader(False)
                    return
                if await self._attempt(remaining):
                    break
                if not self._leader:
                    return  # the Lease names someone else now
                # wake up at the deadline at the latest, so the step-down is not late
                await asyncio.sleep(min(self.retry_period, max(self.leadership_remaining(), 0.0)))

    async def release(self) -> bool:
        """Give the Lease up (empty holderIdentity) so a successor takes over at once; True when released.

        Call it after cancelling run(). Stops acting first; a Lease somebody else took meanwhile is left
        alone (the write carries the resourceVersion we last saw, so it fails with 409).
        """
        lease = self._lease
        self._set_leader(False)
        self._renewed_at = None
        if lease is None or _spec(lease).get("holderIdentity") != self.identity:
            return False
        now = micro_time(self._clock())
        # client-go release(): holder cleared, duration 1 s, transitions kept
        spec = {
            **_spec(lease),
            "holderIdentity": "",
            "leaseDurationSeconds": 1,
            "acquireTime": now,
            "renewTime": now,
        }
        try:
            async with asyncio.timeout(self.renew_deadline):
                released = await self._leases.update(*self._key, self._body(dict(_metadata(lease)), spec))
        except (LeaseConflict, BrokerError, TimeoutError) as exc:
            log.info(
                "did not release the janitor lease",
                extra={"lease": f"{self.namespace}/{self.name}", "error": str(exc)},
            )
            return False
        self._observe(released)
        return True
