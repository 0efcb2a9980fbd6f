"""Audit retention, at most once every `every` seconds (hourly by default)."""

from __future__ import annotations

import logging
from collections.abc import Callable
from datetime import datetime

from broker.audit.store import AuditStore
from broker.domain.errors import BrokerError
from broker.usecases.revocation import Act

from .sweep import Tally

log = logging.getLogger(__name__)

RETENTION_EVERY_SECONDS = 3600.0


class Retention:
    def __init__(self, store: AuditStore, *, every: float, monotonic: Callable[[], float]) -> None:
        self._store = store
        self._every = every
        self._monotonic = monotonic
        self._last: float | None = None

    async def apply(self, act: Act, now: datetime, tally: Tally) -> None:
        moment = self._monotonic()
        if self._last is not None and moment - self._last < self._every:
            return
        try:
            tally.retention_deleted = await act(lambda: self._store.apply_retention(now))
        except BrokerError as exc:
            tally.failed += 1
            log.warning("audit retention failed", extra={"error": exc.detail})
            return
        self._last = moment
