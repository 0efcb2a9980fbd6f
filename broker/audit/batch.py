"""One group-commit batch, executed set-wise: a handful of statements per batch, not one per write.

Every write is a request; the writer hands a batch of them to `BatchRunner`, which runs, in lifecycle order,
one multi-row INSERT for the batch's new issuances, one UPDATE ... FROM (VALUES ...) RETURNING per kind of
state change, any rare maintenance statement, then one multi-row INSERT for all the events (chained, and
last: see chain.py). Round trips per batch stay constant, so a batch of 256 costs about what a batch of 1 does.

Lifecycle order also decides conflicts inside one batch: complete before fail (so a late abort loses to a
completion that got there first, and vice versa across batches), revoke after complete. The same id twice
in one kind: the first request wins, the rest see "nothing changed", as they would in separate batches.
"""

# ruff: noqa: S608 -- SQL text is assembled only from module constants; every value is a bound parameter

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable, Iterator, Sequence
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Any, TypeVar

from .backend import Backend, Row, Tx
from .records import AuditRecord
from .rows import ISSUANCE_COLUMNS, SELECT_ISSUANCE, Codec

# rows per statement: PostgreSQL allows 32767 parameters, SQLite 32766 (3.32+); 500 x 31 columns fits both
CHUNK_ROWS = 500
_SECRET = (
    "secret_namespace = COALESCE(v.v_sns, secret_namespace), secret_name = COALESCE(v.v_sname, secret_name), "
    "secret_uid = COALESCE(v.v_suid, secret_uid)"
)
_SECRET_COLUMNS = (("v_sns", "text"), ("v_sname", "text"), ("v_suid", "text"))

T = TypeVar("T")


@dataclass(frozen=True)
class TransitionKind:
    name: str
    from_state: str
    # the VALUES columns after v_id, with the type PostgreSQL needs to be told
    columns: tuple[tuple[str, str], ...]
    assignments: str
    # False: the event is not an answer to a token request, so it does not repeat the issuance's HTTP status
    keep_status: bool


COMPLETE = TransitionKind(
    "complete",
    "pending",
    (
        ("v_status", "int"),
        ("v_jti", "text"),
        ("v_sha", "text"),
        ("v_issued_at", "time"),
        ("v_expires_at", "time"),
        ("v_revoke_at", "time"),
        ("v_ttl", "int"),
        *_SECRET_COLUMNS,
        ("v_updated", "time"),
        ("v_live", "time"),
    ),
    "event = 'issued', status = v.v_status, jti = v.v_jti, token_sha256 = v.v_sha, issued_at = v.v_issued_at, "
    "expires_at = v.v_expires_at, revoke_at = v.v_revoke_at, ttl_granted = COALESCE(v.v_ttl, ttl_granted), "
    f"{_SECRET}, updated_at = v.v_updated, live_until = v.v_live",
    keep_status=True,
)
FAIL = TransitionKind(
    "fail",
    "pending",
    (("v_event", "text"), ("v_reason", "text"), ("v_status", "int"), *_SECRET_COLUMNS, ("v_updated", "time")),
    f"event = v.v_event, reason = v.v_reason, status = v.v_status, {_SECRET}, updated_at = v.v_updated",
    keep_status=True,
)
REVOKE = TransitionKind(
    "revoke",
    "issued",
    (("v_by", "text"), ("v_at", "time"), ("v_reason", "text"), ("v_updated", "time")),
    "event = 'revoked', revoked_by = v.v_by, revoked_at = v.v_at, "
    "reason = COALESCE(NULLIF(v.v_reason, ''), reason), updated_at = v.v_updated",
    keep_status=False,
)
EXPIRE = TransitionKind(
    "expire", "issued", (("v_updated", "time"),), "event = 'expired', updated_at = v.v_updated", False
)
LIFECYCLE_ORDER = (COMPLETE, FAIL, REVOKE, EXPIRE)


@dataclass(frozen=True)
class Begin:
    """Insert a pending issuance. Result: True, or False when the id already exists."""

    record: AuditRecord


@dataclass(frozen=True)
class Step:
    """One issuance's change: its id, the event's time, and the encoded values of the kind's columns."""

    id: str
    at: datetime
    values: tuple[Any, ...]


@dataclass(frozen=True)
class Transition:
    """Result: per step, the event written, or None when the issuance was not in `kind.from_state` — or, with
    `report_state`, the state it was in instead ("unknown" when there is no such issuance)."""

    kind: TransitionKind
    steps: tuple[Step, ...]
    report_state: bool = False


@dataclass(frozen=True)
class Append:
    """Append an event with no issuance change (a denial). Result: the record."""

    record: AuditRecord


@dataclass(frozen=True)
class Raw:
    """A maintenance statement run after the state changes, before the events. Result: what `run` returns."""

    run: Callable[[Tx], Awaitable[Any]]


Request = Begin | Transition | Append | Raw


def _chunks(items: Sequence[T]) -> Iterator[Sequence[T]]:
    for start in range(0, len(items), CHUNK_ROWS):
        yield items[start : start + CHUNK_ROWS]


def multi_insert(table: str, columns: Sequence[str], rows: int) -> str:
    row = "(" + ", ".join("?" * len(columns)) + ")"
    return f"INSERT INTO {table} ({', '.join(columns)}) VALUES " + ", ".join([row] * rows)


# inserts a batch's events, in order, in the open transaction (chain.ChainWriter.append: the hash chain)
AppendEvents = Callable[[Tx, Sequence[AuditRecord]], Awaitable[object]]


class BatchRunner:
    def __init__(self, backend: Backend, codec: Codec, append_events: AppendEvents) -> None:
        self._backend = backend
        self._codec = codec
        self._append_events = append_events

    def _transition_sql(self, kind: TransitionKind, rows: int) -> str:
        names = ["v_id", *(name for name, _ in kind.columns)]
        row = "(" + ", ".join(self._backend.param(t) for t in ["text", *(t for _, t in kind.columns)]) + ")"
        return (
            f"WITH v ({', '.join(names)}) AS (VALUES {', '.join([row] * rows)}) "
            f"UPDATE issuances SET {kind.assignments} FROM v "
            f"WHERE issuances.id = v.v_id AND issuances.event = '{kind.from_state}' RETURNING {SELECT_ISSUANCE}"
        )

    async def __call__(self, tx: Tx, requests: Sequence[Request]) -> list[Any]:
        results: list[Any] = [None] * len(requests)
        events: list[AuditRecord] = []
        await self._begin(tx, requests, results)
        for kind in LIFECYCLE_ORDER:
            await self._transition(tx, kind, requests, results, events)
        for i, request in enumerate(requests):
            if isinstance(request, Append):
                events.append(request.record)
                results[i] = request.record
        for i, request in enumerate(requests):
            if isinstance(request, Raw):
                results[i] = await request.run(tx)
        # last: appending takes the chain head's lock, which every transaction must take after its other locks
        await self._append_events(tx, events)
        return results

    async def _begin(self, tx: Tx, requests: Sequence[Request], results: list[Any]) -> None:
        first: dict[str, int] = {}
        rows: list[list[Any]] = []
        for i, request in enumerate(requests):
            if not isinstance(request, Begin):
                continue
            if request.record.id in first:
                results[i] = False
                continue
            first[request.record.id] = i
            rows.append(self._codec.issuance_values(request.record, request.record.time))
        inserted: set[str] = set()
        for chunk in _chunks(rows):
            sql = multi_insert("issuances", ISSUANCE_COLUMNS, len(chunk))
            sql += " ON CONFLICT (id) DO NOTHING RETURNING id"
            inserted.update(row["id"] for row in await tx.fetch(sql, [v for r in chunk for v in r]))
        for id, i in first.items():
            results[i] = id in inserted

    async def _transition(
        self,
        tx: Tx,
        kind: TransitionKind,
        requests: Sequence[Request],
        results: list[Any],
        events: list[AuditRecord],
    ) -> None:
        mine = [(i, r) for i, r in enumerate(requests) if isinstance(r, Transition) and r.kind is kind]
        if not mine:
            return
        steps: dict[str, Step] = {}
        for _, request in mine:
            for step in request.steps:
                steps.setdefault(step.id, step)
        changed = await self._apply(tx, kind, steps)
        events.extend(changed.values())
        unanswered: list[str] = []
        for i, request in mine:
            # an id's event goes to the first request that asked for it
            results[i] = [changed.pop(step.id, None) for step in request.steps]
            if request.report_state:
                unanswered += [s.id for s, r in zip(request.steps, results[i], strict=True) if r is None]
        if unanswered:
            await self._report_states(tx, unanswered, mine, results)

    async def _apply(self, tx: Tx, kind: TransitionKind, steps: dict[str, Step]) -> dict[str, AuditRecord]:
        """The event of every issuance the transition moved, keyed by id (those in another state are absent)."""
        changed: dict[str, AuditRecord] = {}
        for chunk in _chunks(list(steps.values())):
            args = [v for step in chunk for v in (step.id, *step.values)]
            for row in await tx.fetch(self._transition_sql(kind, len(chunk)), args):
                record = self._codec.record(row)
                changed[record.id] = replace(
                    record,
                    time=steps[record.id].at,
                    event_id=str(uuid.uuid4()),
                    status=record.status if kind.keep_status else None,
                )
        return changed

    async def _report_states(
        self, tx: Tx, ids: list[str], mine: list[tuple[int, Transition]], results: list[Any]
    ) -> None:
        states = await self._states(tx, ids)
        for i, request in mine:
            if request.report_state:
                results[i] = [
                    r if r is not None else states.get(s.id, "unknown")
                    for r, s in zip(results[i], request.steps, strict=True)
                ]

    async def _states(self, tx: Tx, ids: list[str]) -> dict[str, str]:
        states: dict[str, str] = {}
        for chunk in _chunks(ids):
            sql = f"SELECT id, event FROM issuances WHERE id IN ({', '.join('?' * len(chunk))})"
            rows: list[Row] = await tx.fetch(sql, list(chunk))
            states.update((row["id"], str(row["event"])) for row in rows)
        return states
