"""Ephemeral service accounts (roles with ephemeral_service_account) are deleted once their last token ended:
made by the broker (MANAGED_BY), no live token nor issuance under way for them, no other role relying on them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from broker import metrics
from broker.audit.store import MAX_PAGE, AuditStore
from broker.domain.errors import BrokerError
from broker.domain.records import AuditFilter
from broker.domain.roles import Role
from broker.kube.labels import MANAGED_BY
from broker.kube.objects import meta
from broker.usecases.clusters import Clusters, lookup
from broker.usecases.revocation import Act

from .sweep import Tally

log = logging.getLogger(__name__)

Account = tuple[str, str, str]  # cluster, namespace, name


class Retirement:
    def __init__(
        self, store: AuditStore, clusters: Clusters, roles: Callable[[], Mapping[str, Role]]
    ) -> None:
        self._store = store
        self._clusters = clusters
        self._roles = roles
        # accounts whose deletion failed: tried again on the next sweeps of this replica
        self._to_retry: set[Account] = set()

    async def retire(self, act: Act, now: datetime, tally: Tally) -> None:
        roles = self._roles()
        ephemeral = {name: role for name, role in roles.items() if role.ephemeral_service_account}
        if not ephemeral and not self._to_retry:
            return
        await self._expire_unbound(act, ephemeral, now, tally)
        candidates = set(self._to_retry)
        for record in tally.ended:
            if record.role in ephemeral and record.service_account and record.namespace:
                candidates.add((record.cluster, record.namespace, record.service_account))
        for account in sorted(candidates):
            try:
                deleted = await self._retire(act, roles, account, now)
            except BrokerError as exc:
                self._to_retry.add(account)
                tally.failed += 1
                log.warning(
                    "janitor could not delete an ephemeral service account; retried next sweep",
                    extra={
                        "cluster": account[0],
                        "service_account": f"{account[1]}/{account[2]}",
                        "error": exc.detail,
                    },
                )
                continue
            self._to_retry.discard(account)
            if deleted:
                tally.deleted_service_accounts += 1
                metrics.janitor_deleted("serviceaccounts")

    async def _expire_unbound(
        self, act: Act, ephemeral: Mapping[str, Role], now: datetime, tally: Tally
    ) -> None:
        """Tokens of ephemeral roles without a bound Secret end by their exp alone; record them as expired so
        their account's last token is known to be gone (tokens with a Secret are left to expiry)."""
        for role in ephemeral.values():
            flt = AuditFilter(role=role.name, cluster=role.cluster, event="issued", active=False)
            try:
                page = await act(functools.partial(self._store.query_issuances, flt, limit=MAX_PAGE, now=now))
                ended = [record for record in page.items if record.bound_secret is None]
                if ended:
                    ids = [record.id for record in ended]
                    marked = await act(functools.partial(self._store.mark_expired, ids, at=now))
                    tally.expired += len(marked)
                    tally.ended.extend(ended)
            except BrokerError as exc:
                tally.failed += 1
                log.warning("janitor cannot read the audit store", extra={"error": exc.detail})

    async def _retire(self, act: Act, roles: Mapping[str, Role], account: Account, now: datetime) -> bool:
        cluster, namespace, name = account
        sharing = [r for r in roles.values() if r.service_account == name and r.cluster == cluster]
        if not sharing or not all(r.ephemeral_service_account for r in sharing):
            return False  # another role relies on the account staying
        client = lookup(self._clusters).get(cluster)
        if client is None or await self._in_use(act, account, now):
            return False
        found = await act(lambda: client.accounts.get(namespace, name))
        if found is None or not _made_by_us(found, account):
            return False
        uid = meta(found).get("uid")
        precondition = uid if isinstance(uid, str) and uid else None
        deleted = await act(lambda: client.accounts.delete(namespace, name, uid=precondition))

        if deleted:
            log.info(
                "deleted ephemeral service account: its last token ended",
                extra={"cluster": cluster, "service_account": f"{namespace}/{name}"},
            )
        return deleted

    async def _in_use(self, act: Act, account: Account, now: datetime) -> bool:
        """A live token, or an issuance under way, for this account in this namespace (whatever the role)."""
        cluster, namespace, name = account
        for flt in (
            AuditFilter(namespace=namespace, cluster=cluster, active=True),
            AuditFilter(namespace=namespace, cluster=cluster, event="pending"),
        ):
            cursor: str | None = None
            while True:
                page = await act(
                    functools.partial(self._store.query_issuances, flt, cursor, limit=MAX_PAGE, now=now)
                )
                if any(record.service_account == name for record in page.items):
                    return True
                cursor = page.next_cursor
                if cursor is None:
                    break
        return False


def _made_by_us(found: Mapping[str, object], account: Account) -> bool:
    labels = meta(found).get("labels")
    if isinstance(labels, dict) and all(labels.get(key) == value for key, value in MANAGED_BY.items()):
        return True
    # made by someone else (or adopted): not ours to delete
    log.info(
        "janitor leaves a service account it did not create",
        extra={"cluster": account[0], "service_account": f"{account[1]}/{account[2]}"},
    )
    return False
