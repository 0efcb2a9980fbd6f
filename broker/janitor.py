"""The janitor: ends tokens on time and cleans up after them and after crashes.

* Expiry sweeps: a revocable token is bound to a Secret (TokenRequest boundObjectRef); once the token is past
  its exp — or past the revoke-at of a token asked shorter than Kubernetes' 600 s floor — the Secret is
  deleted (the API server then rejects the token: 401) and the record marked expired.
* Ephemeral service accounts of roles that ask for it are deleted once their last token has ended.
* Pending issuances left by a crash (a pending record is committed before the binding Secret is created) are
  repaired: every Secret labelled with the token id is deleted, then the record is marked aborted.
* Audit retention, at most hourly.
* The active-tokens gauge (token_broker_active_tokens by role), counted from the audit store after each sweep.

With several replicas only the holder of the janitor Lease acts (broker/leader.py), and it re-checks its
leadership before every step: a step never runs past the moment this replica's leadership could lapse.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import TypeVar

from broker import metrics
from broker.audit.records import AuditRecord, utc_now
from broker.audit.store import MAX_PAGE, AuditFilter, AuditStore
from broker.domain.errors import BrokerError
from broker.domain.roles import Role
from broker.kube import Cluster
from broker.kube.labels import MANAGED_BY, TOKEN_ID_LABEL
from broker.leader import LeaseElector, NotLeader

log = logging.getLogger(__name__)

T = TypeVar("T")

Clusters = Mapping[str, Cluster]
ClusterSource = Clusters | Callable[[], Clusters]

REPAIR_REASON = "broker stopped during issuance; bound Secret deleted"
# a pending record older than this during normal operation belongs to an issuance that died
STALE_PENDING_AFTER = timedelta(minutes=10)
RETENTION_EVERY_SECONDS = 3600.0
SWEEP_BATCH = 500
# concurrent Secret deletions per sweep: fast through a backlog without flooding the API server
DELETE_CONCURRENCY = 8
# the active-tokens gauge counts live issuances page by page, at most this many per sweep (ten store pages):
# beyond it the gauge under-reports and says so in the log. The store has no count query; one
# (`count_active_by_role`, a GROUP BY over the live rows) would lift the bound.
ACTIVE_COUNT_LIMIT = 10 * MAX_PAGE

ActiveTokensHook = Callable[[Mapping[str, int]], None]


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did; `leader` False means this replica was not the leader and did nothing."""

    leader: bool
    deleted_secrets: int = 0
    expired: int = 0
    # records whose Secret could not be deleted (left for the next sweep) and failed store steps
    failed: int = 0
    deleted_service_accounts: int = 0
    repaired: int = 0
    retention_deleted: int = 0
    # leadership ran out mid-sweep: the rest is left to whoever leads next
    interrupted: bool = False
    # monotonic clock: when the sweep began and ended
    started: float = 0.0
    finished: float = 0.0


@dataclass
class _Tally:
    deleted_secrets: int = 0
    expired: int = 0
    failed: int = 0
    deleted_service_accounts: int = 0
    repaired: int = 0
    retention_deleted: int = 0
    interrupted: bool = False
    ended: list[AuditRecord] = field(default_factory=list)


def _labels(obj: Mapping[str, object]) -> Mapping[str, object]:
    meta = obj.get("metadata")
    labels = meta.get("labels") if isinstance(meta, dict) else None
    return labels if isinstance(labels, dict) else {}


def _uid(obj: Mapping[str, object]) -> str | None:
    meta = obj.get("metadata")
    uid = meta.get("uid") if isinstance(meta, dict) else None
    return uid if isinstance(uid, str) and uid else None


class Janitor:
    """`run()` sweeps every `interval` seconds while this replica leads (always, when `elector` is None:
    single-replica mode); `repair_pending()` is the start-up repair any replica may run."""

    def __init__(
        self,
        store: AuditStore,
        clusters: ClusterSource,
        elector: LeaseElector | None,
        *,
        interval: float,
        roles: Callable[[], Mapping[str, Role]] = dict,
        clock: Callable[[], datetime] = utc_now,
        monotonic: Callable[[], float] = time.monotonic,
        on_sweep: Callable[[SweepResult], None] | None = None,
        repair_after: timedelta = STALE_PENDING_AFTER,
        retention_every: float = RETENTION_EVERY_SECONDS,
        batch_size: int = SWEEP_BATCH,
        on_active_tokens: ActiveTokensHook | None = metrics.set_active_tokens,
        active_count_limit: int = ACTIVE_COUNT_LIMIT,
    ) -> None:
        """on_active_tokens: receives live tokens by role after each sweep of the leader, and {} on a replica
        that does not lead (so only the leader reports non-zero counts: dashboards take `max by (role)`)."""
        if interval <= 0:
            raise ValueError("the janitor interval must be positive")
        self._store = store
        self._clusters = clusters
        self._elector = elector
        self._interval = interval
        self._roles = roles
        self._clock = clock
        self._monotonic = monotonic
        self._on_sweep = on_sweep
        self._repair_after = repair_after
        self._retention_every = retention_every
        self._batch = batch_size
        self._on_active_tokens = on_active_tokens
        self._active_limit = max(1, active_count_limit)
        self._active_overflow_logged = False
        self._last_retention: float | None = None
        # ephemeral accounts whose deletion failed: tried again on the next sweeps of this replica
        self._accounts_to_retry: set[tuple[str, str, str]] = set()

    # -- leadership ------------------------------------------------------------------------------------------
    def may_act(self) -> bool:
        return self._elector is None or self._elector.still_leader()

    async def _act(self, make: Callable[[], Awaitable[T]], *, guarded: bool = True) -> T:
        """Run one step only while leader; it is cut short (NotLeader) the moment leadership ends."""
        if not guarded or self._elector is None:
            return await make()
        async with self._elector.leading():
            return await make()

    def _cluster_map(self) -> Clusters:
        return self._clusters if isinstance(self._clusters, Mapping) else self._clusters()

    # -- the loop ----------------------------------------------------------------------------------------------
    async def run(self) -> None:
        """Sweep every `interval` seconds until cancelled; a failed sweep is logged and the next one runs."""
        while True:
            started = self._monotonic()
            try:
                await self.sweep_once()
            except Exception:
                log.exception("janitor sweep failed")
            await asyncio.sleep(max(0.0, self._interval - (self._monotonic() - started)))

    async def sweep_once(self, now: datetime | None = None) -> SweepResult:
        now = now or self._clock()
        started = self._monotonic()
        if not self.may_act():
            self._publish_active_tokens({})
            return self._report(SweepResult(leader=False, started=started, finished=self._monotonic()))
        tally = _Tally()
        try:
            await self._repair_stale(now, tally)
            await self._expire_due(now, tally)
            await self._retire_accounts(now, tally)
            await self._retention(now, tally)
            await self._count_active_tokens(now)
        except NotLeader:
            tally.interrupted = True
            log.warning("janitor sweep cut short: leadership lapsed; the next leader carries on")
        return self._report(
            SweepResult(
                leader=True,
                deleted_secrets=tally.deleted_secrets,
                expired=tally.expired,
                failed=tally.failed,
                deleted_service_accounts=tally.deleted_service_accounts,
                repaired=tally.repaired,
                retention_deleted=tally.retention_deleted,
                interrupted=tally.interrupted,
                started=started,
                finished=self._monotonic(),
            )
        )

    def _report(self, result: SweepResult) -> SweepResult:
        if self._on_sweep is not None:
            try:
                self._on_sweep(result)
            except Exception:
                log.exception("janitor on_sweep hook failed")
        return result

    # -- the active-tokens gauge ---------------------------------------------------------------------------------
    async def _count_active_tokens(self, now: datetime) -> None:
        """Live issuances by role, from at most `active_count_limit` records (newest first)."""
        if self._on_active_tokens is None:
            return
        counts: dict[str, int] = {}
        seen = 0
        cursor: str | None = None
        live = AuditFilter(active=True)
        try:
            while True:
                limit = min(MAX_PAGE, self._active_limit - seen)
                page = await self._act(
                    functools.partial(self._store.query_issuances, live, cursor, limit=limit, now=now)
                )
                for record in page.items:
                    counts[record.role] = counts.get(record.role, 0) + 1
                seen += len(page.items)
                cursor = page.next_cursor
                if cursor is None:
                    break
                if seen >= self._active_limit:
                    if not self._active_overflow_logged:
                        self._active_overflow_logged = True
                        log.warning(
                            "more live tokens than the active-tokens gauge counts; it under-reports",
                            extra={"counted": seen},
                        )
                    break
        except BrokerError as exc:
            # the gauge keeps its last values; the sweep's own steps report the store being down
            log.warning("janitor cannot count active tokens", extra={"error": exc.detail})
            return
        self._publish_active_tokens(counts)

    def _publish_active_tokens(self, counts: Mapping[str, int]) -> None:
        if self._on_active_tokens is None:
            return
        try:
            self._on_active_tokens(counts)
        except Exception:
            log.exception("janitor on_active_tokens hook failed")

    # -- expiry ------------------------------------------------------------------------------------------------
    async def _expire_due(self, now: datetime, tally: _Tally) -> None:
        clusters = self._cluster_map()
        while True:
            try:
                batch = await self._act(lambda: self._store.due_for_cleanup(now, limit=self._batch))
            except BrokerError as exc:
                tally.failed += 1
                log.warning("janitor cannot read the audit store", extra={"error": exc.detail})
                return
            if not batch:
                return
            outcomes = await self._delete_bound_secrets(batch, clusters)
            done = [record for record, outcome in zip(batch, outcomes, strict=True) if outcome is not None]
            tally.deleted_secrets += sum(1 for outcome in outcomes if outcome)
            tally.failed += sum(1 for outcome in outcomes if outcome is None)
            if done:
                # A token whose revoke-at (a revocable token asked shorter than the 600 s TokenRequest floor)
                # has passed is recorded as expired too, not revoked: its life ended when the caller asked,
                # nobody revoked it.
                ids = [record.id for record in done]
                try:
                    events = await self._act(functools.partial(self._store.mark_expired, ids, at=now))
                except BrokerError as exc:
                    # the Secrets are gone; the next sweep finds the records again (404 = fine) and marks them
                    tally.failed += len(done)
                    log.warning("janitor cannot record expiries", extra={"error": exc.detail})
                    return
                tally.expired += len(events)
                tally.ended.extend(done)
            if len(done) < len(batch) or len(batch) < self._batch:
                # records that failed come first again: do not spin on them within one sweep
                return

    async def _delete_bound_secrets(
        self, batch: Sequence[AuditRecord], clusters: Clusters
    ) -> list[bool | None]:
        """Per record: True deleted, False already gone, None failed (kept for the next sweep)."""
        gate = asyncio.Semaphore(DELETE_CONCURRENCY)
        lost = False

        async def one(record: AuditRecord) -> bool | None:
            nonlocal lost
            secret = record.bound_secret
            client = clusters.get(record.cluster)
            if secret is None or client is None:
                log.warning(
                    "janitor cannot clean up a token: its cluster is not configured",
                    extra={"token_id": record.id, "cluster": record.cluster},
                )
                return None
            async with gate:
                try:
                    return await self._act(
                        lambda: client.secrets.delete(secret.namespace, secret.name, uid=secret.uid or None)
                    )
                except NotLeader:
                    lost = True
                    return None
                except BrokerError as exc:
                    log.warning(
                        "janitor could not delete a bound Secret; retried next sweep",
                        extra={
                            "token_id": record.id,
                            "cluster": record.cluster,
                            "secret": f"{secret.namespace}/{secret.name}",
                            "error": exc.detail,
                        },
                    )
                    return None

        outcomes = await asyncio.gather(*(one(record) for record in batch))
        if lost:
            # the Secrets already deleted stay deleted; their records are marked by the next leader (404)
            raise NotLeader
        return list(outcomes)

    # -- ephemeral service accounts ----------------------------------------------------------------------------
    async def _retire_accounts(self, now: datetime, tally: _Tally) -> None:
        roles = self._roles()
        ephemeral = {name: role for name, role in roles.items() if role.ephemeral_service_account}
        if not ephemeral and not self._accounts_to_retry:
            return
        await self._expire_unbound(ephemeral, now, tally)
        candidates = set(self._accounts_to_retry)
        for record in tally.ended:
            role = ephemeral.get(record.role)
            if role is not None and record.service_account and record.namespace:
                candidates.add((record.cluster, record.namespace, record.service_account))
        clusters = self._cluster_map()
        for cluster, namespace, account in sorted(candidates):
            try:
                deleted = await self._retire_account(roles, clusters, cluster, namespace, account, now)
            except BrokerError as exc:
                self._accounts_to_retry.add((cluster, namespace, account))
                tally.failed += 1
                log.warning(
                    "janitor could not delete an ephemeral service account; retried next sweep",
                    extra={
                        "cluster": cluster,
                        "service_account": f"{namespace}/{account}",
                        "error": exc.detail,
                    },
                )
                continue
            self._accounts_to_retry.discard((cluster, namespace, account))
            tally.deleted_service_accounts += int(deleted)

    async def _expire_unbound(self, ephemeral: Mapping[str, Role], now: datetime, tally: _Tally) -> None:
        """Tokens of ephemeral roles without a bound Secret end by their exp alone; record them as expired so
        their account's last token is known to be gone (tokens with a Secret are left to the sweep above)."""
        for role in ephemeral.values():
            flt = AuditFilter(role=role.name, cluster=role.cluster, event="issued", active=False)
            try:
                page = await self._act(
                    functools.partial(self._store.query_issuances, flt, limit=MAX_PAGE, now=now)
                )
                ended = [record for record in page.items if record.bound_secret is None]
                if ended:
                    ids = [record.id for record in ended]
                    marked = await self._act(functools.partial(self._store.mark_expired, ids, at=now))
                    tally.expired += len(marked)
                    tally.ended.extend(ended)
            except BrokerError as exc:
                tally.failed += 1
                log.warning("janitor cannot read the audit store", extra={"error": exc.detail})

    async def _retire_account(
        self,
        roles: Mapping[str, Role],
        clusters: Clusters,
        cluster: str,
        namespace: str,
        account: str,
        now: datetime,
    ) -> bool:
        sharing = [r for r in roles.values() if r.service_account == account and r.cluster == cluster]
        if not sharing or not all(r.ephemeral_service_account for r in sharing):
            return False  # another role relies on the account staying
        if await self._account_in_use(cluster, namespace, account, now):
            return False
        client = clusters.get(cluster)
        if client is None:
            return False
        found = await self._act(lambda: client.accounts.get(namespace, account))
        if found is None:
            return False
        labels = _labels(found)
        if any(labels.get(key) != value for key, value in MANAGED_BY.items()):
            # made by someone else (or adopted): not ours to delete
            log.info(
                "janitor leaves a service account it did not create",
                extra={"cluster": cluster, "service_account": f"{namespace}/{account}"},
            )
            return False
        uid = _uid(found)
        deleted = await self._act(lambda: client.accounts.delete(namespace, account, uid=uid))
        if deleted:
            log.info(
                "deleted ephemeral service account: its last token ended",
                extra={"cluster": cluster, "service_account": f"{namespace}/{account}"},
            )
        return deleted

    async def _account_in_use(self, cluster: str, namespace: str, account: str, now: datetime) -> bool:
        """A live token, or an issuance under way, for this account in this namespace (whatever the role)."""
        for flt in (
            AuditFilter(namespace=namespace, cluster=cluster, active=True),
            AuditFilter(namespace=namespace, cluster=cluster, event="pending"),
        ):
            cursor: str | None = None
            while True:
                page = await self._act(
                    functools.partial(self._store.query_issuances, flt, cursor, limit=MAX_PAGE, now=now)
                )
                if any(record.service_account == account for record in page.items):
                    return True
                cursor = page.next_cursor
                if cursor is None:
                    break
        return False

    # -- repair and retention --------------------------------------------------------------------------------
    async def repair_pending(self, older_than: datetime) -> int:
        """Start-up repair (any replica; idempotent): resolve pending issuances begun at or before `older_than`.

        For each, every Secret labelled token-broker.io/token-id=<id> in its namespace is deleted (so no token
        bound to it can work), then the record is marked aborted. A record whose Secrets cannot be deleted
        stays pending and is tried again at the next start or by the leader's sweeps. Returns records aborted.
        """
        repaired = 0
        tried: set[str] = set()
        while True:
            batch = [r for r in await self._store.pending_issuances(older_than) if r.id not in tried]
            if not batch:
                return repaired
            for record in batch:
                tried.add(record.id)
                repaired += int(await self._repair(record, guarded=False))

    async def _repair_stale(self, now: datetime, tally: _Tally) -> None:
        try:
            pending = await self._act(lambda: self._store.pending_issuances(now - self._repair_after))
        except BrokerError as exc:
            tally.failed += 1
            log.warning("janitor cannot read the audit store", extra={"error": exc.detail})
            return
        for record in pending:
            if await self._repair(record, guarded=True):
                tally.repaired += 1
            else:
                tally.failed += 1

    async def _repair(self, record: AuditRecord, *, guarded: bool) -> bool:
        client = self._cluster_map().get(record.cluster)
        if client is None:
            log.warning(
                "cannot repair a pending issuance: its cluster is not configured",
                extra={"token_id": record.id, "cluster": record.cluster},
            )
            return False
        secret = record.bound_secret
        try:
            if secret is not None:
                await self._act(
                    lambda: client.secrets.delete(secret.namespace, secret.name, uid=secret.uid or None),
                    guarded=guarded,
                )
            if record.namespace:
                # the pending record is written before the binding Secret exists, so it does not name it:
                # find the Secret by the token id the issuer labelled it with
                selector = f"{TOKEN_ID_LABEL}={record.id}"
                await self._act(
                    lambda: client.secrets.delete_labelled(record.namespace, selector), guarded=guarded
                )
            aborted = await self._act(
                lambda: self._store.fail_issuance(
                    record.id, REPAIR_REASON, event="aborted", bound_secret=secret
                ),
                guarded=guarded,
            )
        except BrokerError as exc:
            log.warning(
                "could not repair a pending issuance; it stays pending and is retried",
                extra={"token_id": record.id, "cluster": record.cluster, "error": exc.detail},
            )
            return False
        if aborted is not None:
            log.warning(
                "aborted an issuance the broker did not finish",
                extra={"token_id": record.id, "cluster": record.cluster, "namespace": record.namespace},
            )
        # None: no longer pending (finished meanwhile, or another replica repaired it): nothing left to do
        return aborted is not None

    async def _retention(self, now: datetime, tally: _Tally) -> None:
        moment = self._monotonic()
        if self._last_retention is not None and moment - self._last_retention < self._retention_every:
            return
        try:
            tally.retention_deleted = await self._act(lambda: self._store.apply_retention(now))
        except BrokerError as exc:
            tally.failed += 1
            log.warning("audit retention failed", extra={"error": exc.detail})
            return
        self._last_retention = moment
