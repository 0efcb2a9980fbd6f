"""The active-tokens gauge (token_broker_active_tokens by role), counted from the audit store after each sweep
of the leader; {} on a replica that does not lead, so only the leader reports non-zero counts (dashboards take
`max by (role)`)."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable, Mapping
from datetime import datetime

from broker.audit.store import MAX_PAGE, AuditStore
from broker.domain.errors import BrokerError
from broker.domain.records import AuditFilter
from broker.usecases.revocation import Act

log = logging.getLogger(__name__)

ActiveTokensHook = Callable[[Mapping[str, int]], None]
# live issuances are counted page by page, at most this many per sweep (ten store pages): beyond it the gauge
# under-reports and says so in the log. The store has no count query; one (`count_active_by_role`, a GROUP BY
# over the live rows) would lift the bound.
ACTIVE_COUNT_LIMIT = 10 * MAX_PAGE


class ActiveTokens:
    def __init__(
        self, store: AuditStore, hook: ActiveTokensHook | None, limit: int = ACTIVE_COUNT_LIMIT
    ) -> None:
        self._store = store
        self._hook = hook
        self._limit = max(1, limit)
        self._overflow_logged = False

    async def count(self, act: Act, now: datetime) -> None:
        """Live issuances by role, from at most `limit` records (newest first), published."""
        if self._hook is None:
            return
        try:
            counts = await self._counted(act, now)
        except BrokerError as exc:
            # the gauge keeps its last values; the sweep's own steps report the store being down
            log.warning("janitor cannot count active tokens", extra={"error": exc.detail})
            return
        self.publish(counts)

    async def _counted(self, act: Act, now: datetime) -> dict[str, int]:
        counts: dict[str, int] = {}
        seen = 0
        cursor: str | None = None
        live = AuditFilter(active=True)
        while True:
            limit = min(MAX_PAGE, self._limit - seen)
            page = await act(
                functools.partial(self._store.query_issuances, live, cursor, limit=limit, now=now)
            )
            for record in page.items:
                counts[record.role] = counts.get(record.role, 0) + 1
            seen += len(page.items)
            cursor = page.next_cursor
            if cursor is None:
                return counts
            if seen >= self._limit:
                if not self._overflow_logged:
                    self._overflow_logged = True
                    log.warning(
                        "more live tokens than the active-tokens gauge counts; it under-reports",
                        extra={"counted": seen},
                    )
                return counts

    def publish(self, counts: Mapping[str, int]) -> None:
        if self._hook is None:
            return
        try:
            self._hook(counts)
        except Exception:
            log.exception("janitor on_active_tokens hook failed")
