"""Ending tokens on time: a revocable token is bound to a Secret (TokenRequest boundObjectRef); once it is past
its exp — or past the revoke-at of a token asked shorter than Kubernetes' 600 s floor — the Secret is deleted
(the API server then rejects the token: 401) and the record marked expired."""

from __future__ import annotations

import logging
from datetime import datetime

from broker.audit.store import AuditStore
from broker.domain.errors import BrokerError
from broker.usecases.revocation import Act, Revocation

from .sweep import Tally

log = logging.getLogger(__name__)


async def expire_due(
    store: AuditStore, revocation: Revocation, act: Act, now: datetime, tally: Tally, *, batch_size: int
) -> None:
    while True:
        try:
            batch = await act(lambda: store.due_for_cleanup(now, limit=batch_size))
        except BrokerError as exc:
            tally.failed += 1
            log.warning("janitor cannot read the audit store", extra={"error": exc.detail})
            return
        if not batch:
            return
        outcome = await revocation.expire(batch, now, act)
        tally.deleted_secrets += outcome.deleted
        tally.failed += outcome.failed
        tally.expired += len(outcome.events)
        tally.ended.extend(outcome.ended)
        if outcome.unrecorded:
            return
        if len(outcome.ended) < len(batch) or len(batch) < batch_size:
            # records that failed come first again: do not spin on them within one sweep
            return
