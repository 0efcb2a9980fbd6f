"""The audit trail of one issuance, as the issuance use case writes it: the write-ahead `pending` record, then
`issued`, `failed` or a `denied` event. Every write is timed; a failed one is counted (the caller still gets
its 503)."""

from __future__ import annotations

import logging
import time
import uuid
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any, TypeVar

from broker import metrics
from broker.audit.store import AuditStore
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller
from broker.domain.records import AuditRecord, SecretBinding, token_sha256
from broker.policy import Grant

from .minting import Minted
from .ports import IssueRequest

log = logging.getLogger(__name__)
T = TypeVar("T")


async def audited(write: Awaitable[T]) -> T:
    """An audit store write, timed; a failed one counted (the caller still sees its 503)."""
    started = time.perf_counter()
    try:
        result = await write
    except BrokerError:
        metrics.audit_write_failed()
        raise
    metrics.audit_write(time.perf_counter() - started)
    return result


def _asked(caller: Caller, req: IssueRequest) -> dict[str, Any]:
    """What every record of a request says about who asked, from where, and with which context."""
    return {
        "caller_user": caller.user,
        "caller_method": caller.method,
        "caller_groups": caller.groups,
        "source_address": req.source_address,
        "user_agent": req.user_agent,
        "ttl_requested": req.ttl_seconds,
        "context": dict(req.context),
        "request_id": req.request_id,
    }


class IssuanceTrail:
    def __init__(self, store: AuditStore, clock: Callable[[], datetime]) -> None:
        self._store = store
        self._clock = clock

    async def begin(self, token_id: str, caller: Caller, req: IssueRequest, grant: Grant) -> None:
        """Commit the `pending` record before anything is created in the cluster (503 when it cannot be)."""
        role = grant.role
        pending = AuditRecord(
            id=token_id,
            time=self._clock(),
            event="pending",
            role=role.name,
            cluster=role.cluster,
            namespace=grant.namespace,
            service_account=role.service_account,
            audiences=grant.audiences,
            ttl_granted=grant.ttl_seconds or None,
            **_asked(caller, req),
        )
        await audited(self._store.begin_issuance(pending))

    async def complete(self, token_id: str, minted: Minted, revoke_at: datetime | None) -> None:
        """pending → issued; 503 when it cannot be recorded (then the token must not be handed out)."""
        secret = minted.secret
        await audited(
            self._store.complete_issuance(
                token_id,
                jti=minted.jti,
                token_sha256=token_sha256(minted.token),
                issued_at=minted.issued_at,
                expires_at=minted.expires_at,
                revoke_at=revoke_at,
                bound_secret=SecretBinding(secret.namespace, secret.name, secret.uid) if secret else None,
                ttl_granted=minted.ttl_granted,
            )
        )

    async def deny(self, caller: Caller, req: IssueRequest, exc: BrokerError) -> None:
        denial = AuditRecord(
            id=str(uuid.uuid4()),
            time=self._clock(),
            event="denied",
            role=req.role,
            namespace=req.namespace or "",
            audiences=req.audiences or (),
            reason=exc.reason or exc.detail,
            status=exc.status,
            **_asked(caller, req),
        )
        try:
            await audited(self._store.record_denial(denial))
        except BrokerError:
            # the caller gets its denial either way; turning a 403 into a 503 would only confuse it
            log.error("could not record a denial in the audit store", extra={"caller": caller.user})

    async def fail(self, token_id: str, reason: str, status: int) -> None:
        try:
            await audited(self._store.fail_issuance(token_id, reason, status=status))
        except BrokerError:
            # the record stays pending: start-up repair resolves it (and deletes any Secret labelled with it)
            log.error("could not record a failed issuance", extra={"token_id": token_id})
