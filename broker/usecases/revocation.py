"""The one path that ends an issuance: delete the Secret its token is bound to, with a uid precondition (a
Secret re-created under the same name is someone else's and stays), record the outcome, count it.

Four callers, four outcomes: an operator revokes (`revoked`, token_broker_tokens_revoked_total), the janitor
ends tokens past their expiry or revoke-at (`expired`, token_broker_janitor_deletions_total), repair resolves
an issuance a crash left pending (`aborted`, after every Secret labelled with its token id is gone), and a
failed issuance rolls back the Secret it made (its own `failed` record says so).

`act` runs each step that talks to the cluster or the store: the janitor passes one that cuts a step short
when its leadership lapses (whatever that raises goes through); everyone else runs steps as they are.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol, TypeVar

from broker import metrics
from broker._kits.rfc3339 import format_time
from broker.audit.records import utc_now
from broker.audit.store import AuditStore
from broker.domain.errors import BrokerError, ErrorKind
from broker.domain.identity import Caller
from broker.domain.records import AuditRecord, SecretBinding
from broker.kube.cluster import Cluster
from broker.kube.labels import TOKEN_ID_LABEL
from broker.kube.objects import SecretRef

from .access import Visibility
from .clusters import Clusters, lookup

log = logging.getLogger(__name__)
T = TypeVar("T")


class Act(Protocol):
    """Runs one step (a call to the cluster or the store) and returns its result, or cuts it short."""

    def __call__(self, step: Callable[[], Awaitable[T]], /) -> Awaitable[T]: ...


REPAIR_REASON = "broker stopped during issuance; bound Secret deleted"
# concurrent Secret deletions per expiry batch: fast through a backlog without flooding the API server
DELETE_CONCURRENCY = 8


async def directly(step: Callable[[], Awaitable[T]]) -> T:
    return await step()


@dataclass
class Expiry:
    """What one batch of expiries did. `ended` are the records now marked expired."""

    deleted: int = 0
    failed: int = 0
    ended: list[AuditRecord] = field(default_factory=list)
    events: list[AuditRecord] = field(default_factory=list)
    # the Secrets went, but their records could not be marked: the next sweep finds them again (404 = fine)
    unrecorded: bool = False


class Revocation:
    def __init__(
        self, store: AuditStore, clusters: Clusters, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._store = store
        self._clusters = clusters
        self._clock = clock

    def cluster(self, name: str) -> Cluster | None:
        return lookup(self._clusters).get(name)

    async def _delete(self, client: Cluster, secret: SecretBinding, act: Act = directly) -> bool:
        """True when this call deleted the Secret, False when it was already gone; BrokerError otherwise."""
        return await act(lambda: client.secrets.delete(secret.namespace, secret.name, uid=secret.uid or None))

    # -- operators ---------------------------------------------------------------------------------------------
    async def revoke(
        self, record: AuditRecord, client: Cluster, *, by: str, reason: str
    ) -> AuditRecord | None:
        """Delete the bound Secret of an issued token, then record it; the `revoked` event, or None when
        another revocation recorded it first. A failed deletion records nothing: the token is still valid."""
        secret = record.bound_secret
        assert secret is not None
        deleted = await self._delete(client, secret)
        event = await self._store.mark_revoked(record.id, by=by, at=self._clock(), reason=reason)
        if event is not None:
            # counted once per token: a concurrent DELETE of the same token finds it no longer issued (None)
            metrics.token_revoked(record.role)
        log.info(
            "token revoked",
            extra={
                "token_id": record.id,
                "jti": record.jti,
                "by": by,
                "secret": f"{secret.namespace}/{secret.name}",
                "secret_was_present": deleted,
                "recorded": event is not None,
            },
        )
        return event

    # -- the janitor: expiry -----------------------------------------------------------------------------------
    async def expire(self, batch: Sequence[AuditRecord], now: datetime, act: Act = directly) -> Expiry:
        """End every token of `batch` (issued, bound, past exp or revoke-at): delete the Secrets, then mark the
        records expired. A record whose Secret could not be deleted is kept for the next sweep."""
        outcomes = await self._delete_all(batch, act)
        done = [record for record, outcome in zip(batch, outcomes, strict=True) if outcome is not None]
        result = Expiry(deleted=sum(1 for o in outcomes if o), failed=sum(1 for o in outcomes if o is None))
        if result.deleted:
            metrics.janitor_deleted("secrets", result.deleted)
        if not done:
            return result
        # A token whose revoke-at (a revocable token asked shorter than the 600 s TokenRequest floor) has
        # passed is recorded as expired too, not revoked: its life ended when the caller asked.
        try:
            result.events = await act(lambda: self._store.mark_expired([r.id for r in done], at=now))
        except BrokerError as exc:
            result.failed += len(done)
            result.unrecorded = True
            log.warning("janitor cannot record expiries", extra={"error": exc.detail})
            return result
        result.ended = done
        return result

    async def _delete_all(self, batch: Sequence[AuditRecord], act: Act) -> list[bool | None]:
        """Per record: True deleted, False already gone, None failed (kept for the next sweep)."""
        gate = asyncio.Semaphore(DELETE_CONCURRENCY)
        interrupted: list[BaseException] = []

        async def one(record: AuditRecord) -> bool | None:
            secret, client = record.bound_secret, self.cluster(record.cluster)
            if secret is None or client is None:
                log.warning(
                    "janitor cannot clean up a token: its cluster is not configured",
                    extra={"token_id": record.id, "cluster": record.cluster},
                )
                return None
            async with gate:
                try:
                    return await self._delete(client, secret, act)
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
                except Exception as exc:  # the act's own verdict (leadership lapsed): raised after the batch
                    interrupted.append(exc)
                    return None

        outcomes = await asyncio.gather(*(one(record) for record in batch))
        if interrupted:
            # the Secrets already deleted stay deleted; their records are marked by the next leader (404)
            raise interrupted[0]
        return list(outcomes)

    # -- repair ------------------------------------------------------------------------------------------------
    async def abort(self, record: AuditRecord, act: Act = directly) -> bool:
        """Resolve a pending issuance: every Secret labelled token-broker.io/token-id=<id> in its namespace is
        deleted (so no token bound to it can work), then the record is marked aborted. True when this call
        aborted it; False when it cannot yet (it stays pending and is tried again) or is no longer pending."""
        client = self.cluster(record.cluster)
        if client is None:
            log.warning(
                "cannot repair a pending issuance: its cluster is not configured",
                extra={"token_id": record.id, "cluster": record.cluster},
            )
            return False
        try:
            aborted = await self._abort(record, client, act)
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

    async def _abort(self, record: AuditRecord, client: Cluster, act: Act) -> object:
        secret = record.bound_secret
        if secret is not None:
            await self._delete(client, secret, act)
        if record.namespace:
            # the pending record is written before the binding Secret exists, so it does not name it: find the
            # Secret by the token id the issuance labelled it with
            selector = f"{TOKEN_ID_LABEL}={record.id}"
            await act(lambda: client.secrets.delete_labelled(record.namespace, selector))
        return await act(
            lambda: self._store.fail_issuance(record.id, REPAIR_REASON, event="aborted", bound_secret=secret)
        )

    # -- issuance rollback -------------------------------------------------------------------------------------
    async def roll_back(self, client: Cluster, secret: SecretRef) -> bool:
        """Delete the binding Secret of an issuance that failed; False when it may still exist (then the record
        stays pending, and repair deletes it by its token-id label)."""
        try:
            # shielded: a cancelled request must still clean up what it created
            await asyncio.shield(client.secrets.delete(secret.namespace, secret.name, uid=secret.uid))
        except (BrokerError, asyncio.CancelledError):
            log.warning(
                "could not delete a binding Secret after a failed issuance; start-up or janitor repair will",
                extra={"secret": f"{secret.namespace}/{secret.name}"},
            )
            return False
        return True


class Revocations:
    """Implements RevocationPort: an operator (or the token's own caller) revokes a token by its id."""

    def __init__(self, store: AuditStore, revocation: Revocation, visibility: Visibility) -> None:
        self._store = store
        self._revocation = revocation
        self._visibility = visibility

    async def revoke(self, caller: Caller, token_id: str, reason: str = "") -> AuditRecord | None:
        """Delete the token's bound Secret (the API server then rejects the token), then record it.

        Returns the `revoked` event, or None when the token was already dead (revoked, or expired and its Secret
        deleted by the janitor): DELETE is idempotent. 404 for a token the caller may not see; 409 for a token
        that cannot be revoked (no bound Secret) or is not issued; 502/503 when the API server did not delete
        the Secret, and then nothing is recorded: the token is still valid and the record must say so.
        """
        record = await self._store.get_issuance(token_id)
        if record is None or not self._visibility.sees(caller, record):
            raise BrokerError(ErrorKind.NOT_FOUND, "no such token")
        if record.event in ("revoked", "expired"):
            return None
        client = self._revocable(record)
        return await self._revocation.revoke(record, client, by=caller.user, reason=reason)

    def _revocable(self, record: AuditRecord) -> Cluster:
        if record.event == "pending":
            raise BrokerError(
                ErrorKind.ISSUANCE_IN_PROGRESS, "the token is still being issued; try again in a moment"
            )
        if record.event != "issued":
            raise BrokerError(
                ErrorKind.NOT_ISSUED, f"there is no token to revoke: the issuance {record.event}"
            )
        secret = record.bound_secret
        if secret is None:
            ends = format_time(record.expires_at, "microseconds") if record.expires_at else "never"
            raise BrokerError(
                ErrorKind.NOT_REVOCABLE,
                f"token is not revocable: role {record.role!r} does not bind tokens to a Secret; "
                f"it expires at {ends}",
            )
        client = self._revocation.cluster(record.cluster)
        if client is None:
            raise BrokerError(
                ErrorKind.CLUSTER_UNKNOWN,
                f"the token was issued by cluster {record.cluster!r}, which this broker does not have "
                f"configured; delete Secret {secret.namespace}/{secret.name} there to revoke it",
            )
        return client
