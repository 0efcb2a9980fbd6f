"""AuditRecord ↔ table rows (the same columns in `issuances` and `events`)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any, cast

from .backend import Backend, Row
from .records import AuditRecord, Event, SecretBinding

RECORD_COLUMNS: tuple[str, ...] = (
    "id",
    "ts",
    "event",
    "status",
    "caller_user",
    "caller_method",
    "caller_groups",
    "source_address",
    "user_agent",
    "role",
    "cluster",
    "namespace",
    "service_account",
    "audiences",
    "ttl_requested",
    "ttl_granted",
    "jti",
    "token_sha256",
    "issued_at",
    "expires_at",
    "revoke_at",
    "secret_namespace",
    "secret_name",
    "secret_uid",
    "context",
    "reason",
    "request_id",
    "revoked_by",
    "revoked_at",
)
ISSUANCE_COLUMNS = (*RECORD_COLUMNS, "updated_at", "live_until")
EVENT_COLUMNS = ("event_id", *RECORD_COLUMNS)

# a legacy Secret token has no exp: it stays live until its Secret goes
NEVER = datetime(9999, 12, 31, tzinfo=UTC)


def _json(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False)


def live_until(record: AuditRecord) -> datetime | None:
    """When an issued token stops working: the earlier of its exp and its revoke-at."""
    if record.event not in ("issued", "revoked", "expired"):
        return None
    ends = [t for t in (record.expires_at, record.revoke_at) if t is not None]
    return min(ends) if ends else NEVER


class Codec:
    def __init__(self, backend: Backend) -> None:
        self._backend = backend

    def time(self, moment: datetime | None) -> Any:
        return None if moment is None else self._backend.encode_time(moment)

    def record_values(self, r: AuditRecord) -> list[Any]:
        s = r.bound_secret
        t = self.time
        return [
            r.id,
            t(r.time),
            r.event,
            r.status,
            r.caller_user,
            r.caller_method,
            _json(list(r.caller_groups)),
            r.source_address,
            r.user_agent,
            r.role,
            r.cluster,
            r.namespace,
            r.service_account,
            _json(list(r.audiences)),
            r.ttl_requested,
            r.ttl_granted,
            r.jti,
            r.token_sha256,
            t(r.issued_at),
            t(r.expires_at),
            t(r.revoke_at),
            None if s is None else s.namespace,
            None if s is None else s.name,
            None if s is None else s.uid,
            _json(dict(r.context)),
            r.reason,
            r.request_id,
            r.revoked_by,
            t(r.revoked_at),
        ]

    def issuance_values(self, r: AuditRecord, updated_at: datetime) -> list[Any]:
        return [*self.record_values(r), self.time(updated_at), self.time(live_until(r))]

    def event_values(self, r: AuditRecord, event_id: str | None = None) -> list[Any]:
        return [event_id or r.event_id, *self.record_values(r)]

    def record(self, row: Row, *, event_id: bool = False) -> AuditRecord:
        t = self._backend.decode_time

        def opt_time(name: str) -> datetime | None:
            value = row[name]
            return None if value is None else t(value)

        secret = None
        if row["secret_name"] is not None:
            secret = SecretBinding(row["secret_namespace"] or "", row["secret_name"], row["secret_uid"] or "")
        return AuditRecord(
            id=row["id"],
            time=t(row["ts"]),
            event=cast(Event, row["event"]),
            status=row["status"],
            caller_user=row["caller_user"],
            caller_method=row["caller_method"],
            caller_groups=tuple(json.loads(row["caller_groups"])),
            source_address=row["source_address"],
            user_agent=row["user_agent"],
            role=row["role"],
            cluster=row["cluster"],
            namespace=row["namespace"],
            service_account=row["service_account"],
            audiences=tuple(json.loads(row["audiences"])),
            ttl_requested=row["ttl_requested"],
            ttl_granted=row["ttl_granted"],
            jti=row["jti"],
            token_sha256=row["token_sha256"],
            issued_at=opt_time("issued_at"),
            expires_at=opt_time("expires_at"),
            revoke_at=opt_time("revoke_at"),
            bound_secret=secret,
            context=json.loads(row["context"]),
            reason=row["reason"],
            request_id=row["request_id"],
            revoked_by=row["revoked_by"],
            revoked_at=opt_time("revoked_at"),
            event_id=row["event_id"] if event_id else None,
        )


SELECT_ISSUANCE = ", ".join(RECORD_COLUMNS)
SELECT_EVENT = ", ".join(EVENT_COLUMNS)
