"""What each token did in the cluster, for a caller: the kube-apiserver audit log joined to issuance records
(broker/audit/correlate.py), with the operators' visibility rule (broker/operations.py): an operator sees every
token the log names, including those this broker did not issue; any other caller only the tokens it obtained.
"""

from __future__ import annotations

from collections.abc import AsyncIterable, Callable, Sequence
from dataclasses import dataclass

from broker.audit.correlate import LogReader, LogScan, TokenActivity, lines_of
from broker.audit.store import AuditStore
from broker.identity import Caller
from broker.operations import is_operator, owns


@dataclass(frozen=True)
class Correlation:
    tokens: tuple[TokenActivity, ...]
    scan: LogScan


class Correlator:
    def __init__(self, store: AuditStore, operator_groups: Callable[[], Sequence[str]]) -> None:
        self._store = store
        self._operator_groups = operator_groups

    async def correlate(
        self, caller: Caller, chunks: AsyncIterable[bytes], *, jti: str | None = None
    ) -> Correlation:
        """Read the audit log (bytes, JSON lines) and join; BrokerError 503 when the store cannot be read."""
        reader = LogReader(only_jti=jti)
        await reader.add_stream(lines_of(chunks))
        activities = await reader.correlate(self._store.find_by_jti)
        if not is_operator(caller, self._operator_groups()):
            activities = [a for a in activities if a.issuance is not None and owns(caller, a.issuance)]
        return Correlation(tuple(activities), reader.scan)
