"""What each token did in the cluster, for a caller: the kube-apiserver audit log joined to issuance records
(broker/audit/correlate.py), with the operators' visibility rule (access.py): an operator sees every token the
log names, including those this broker did not issue; any other caller only the tokens it obtained.
"""

from __future__ import annotations

from collections.abc import AsyncIterable

from broker.audit.correlate import LogReader, lines_of
from broker.audit.store import AuditStore
from broker.domain.identity import Caller

from .access import Visibility
from .ports import Correlation


class Correlator:
    def __init__(self, store: AuditStore, visibility: Visibility) -> None:
        self._store = store
        self._visibility = visibility

    async def correlate(
        self, caller: Caller, chunks: AsyncIterable[bytes], *, jti: str | None = None
    ) -> Correlation:
        reader = LogReader(only_jti=jti)
        await reader.add_stream(lines_of(chunks))
        activities = await reader.correlate(self._store.find_by_jti)
        if not self._visibility.is_operator(caller):
            activities = [
                a for a in activities if a.issuance is not None and self._visibility.sees(caller, a.issuance)
            ]
        scan = reader.scan
        return Correlation(tuple(activities), scan.lines, scan.unparsable, scan.tokens_dropped)
