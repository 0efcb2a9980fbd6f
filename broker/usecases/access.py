"""Who may see which records, decided here and nowhere else.

A caller in one of the operator groups sees every record and may revoke any token; any other caller sees only
the records it made itself (same user name AND same authentication method, so an API key named "alice" is not
the certificate CN=alice) and may revoke only those. A record another caller made is reported as absent (404,
an empty page, `{"active": false}`), never as forbidden: its existence is not the caller's business.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import replace
from datetime import datetime

from broker.domain.identity import Caller
from broker.domain.records import AuditFilter, AuditRecord


def is_operator(caller: Caller, operator_groups: Sequence[str]) -> bool:
    return not set(caller.groups).isdisjoint(operator_groups)


def owns(caller: Caller, record: AuditRecord) -> bool:
    return record.caller_user == caller.user and record.caller_method == caller.method


def matches(record: AuditRecord, f: AuditFilter, now: datetime) -> bool:
    """The store's filter semantics, for a record found another way (by jti)."""
    for wanted, actual in (
        (f.caller, record.caller_user),
        (f.role, record.role),
        (f.namespace, record.namespace),
        (f.cluster, record.cluster),
        (f.event, record.event),
        (f.token_id, record.id),
    ):
        if wanted is not None and wanted != actual:
            return False
    if f.since is not None and record.time < f.since:
        return False
    if f.until is not None and record.time >= f.until:
        return False
    return f.active is None or f.active == record.live_at(now)


class Visibility:
    """operator_groups: read per call, so a SIGHUP reload of `[auth] operator_groups` applies at once."""

    def __init__(self, operator_groups: Callable[[], Sequence[str]]) -> None:
        self._operator_groups = operator_groups

    def is_operator(self, caller: Caller) -> bool:
        return is_operator(caller, self._operator_groups())

    def sees(self, caller: Caller, record: AuditRecord) -> bool:
        return self.is_operator(caller) or owns(caller, record)

    def scope(self, caller: Caller, f: AuditFilter) -> AuditFilter | None:
        """The filter narrowed to what the caller may see; None when nothing can match."""
        if self.is_operator(caller):
            return f
        if f.caller not in (None, caller.user):
            return None
        return replace(f, caller=caller.user)
