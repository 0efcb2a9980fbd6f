"""The hash chain over the event log: every event carries `seq`, `prev_hash` and `hash`.

    hash = SHA-256( canonical({...record_to_dict(event), "seq": seq, "prev_hash": prev_hash, "v": 1}) )

`canonical` is JSON with sorted keys, no whitespace and non-ASCII escaped (`json.dumps(obj, sort_keys=True,
separators=(",", ":"))`), so anybody holding an event as the sinks emit it can recompute its hash. The first
event's `prev_hash` is 64 zeros.

Where the chain is extended: inside the group-commit transaction that inserts the events, as its last step.
The head (`audit_chain` row 'head': seq and hash of the newest event) is read with `SELECT ... FOR UPDATE` on
PostgreSQL, so replicas sharing one database extend the chain one transaction at a time, and a transaction
that waited sees the head the previous one committed (READ COMMITTED re-reads a locked row). `seq` is
therefore also commit order: an event with a lower seq is never committed after one with a higher seq, which
is what lets a sink's cursor ("delivered up to seq N") never skip an event. On SQLite `BEGIN IMMEDIATE` already
serialises writers, across processes too.

Lock order (no deadlocks): a transaction takes the head lock last, after its issuance rows. Retention trims
the oldest events under another row ('anchor': the seq and hash of the newest deleted event, where
verification starts), never under the head.
"""

# ruff: noqa: S608 -- SQL text is assembled only from module constants; every value is a bound parameter

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from .backend import Backend, Row, Tx
from .batch import CHUNK_ROWS, multi_insert
from .records import AuditRecord, record_to_dict
from .rows import EVENT_COLUMNS, SELECT_EVENT, Codec

GENESIS = "0" * 64
CHAIN_VERSION = 1
CHAINED_EVENT_COLUMNS = (*EVENT_COLUMNS, "seq", "prev_hash", "hash")
SELECT_CHAINED = f"{SELECT_EVENT}, seq, prev_hash, hash"


@dataclass(frozen=True)
class ChainedEvent:
    """An event of the log with its place in the chain."""

    seq: int
    prev_hash: str
    hash: str
    record: AuditRecord

    def as_dict(self) -> dict[str, Any]:
        """The event as every sink carries it: the JSON-lines record plus its chain fields."""
        return {
            **record_to_dict(self.record),
            "seq": self.seq,
            "prev_hash": self.prev_hash,
            "hash": self.hash,
        }


@dataclass(frozen=True)
class Link:
    """A point of the chain: the head, the anchor, or a checkpoint."""

    seq: int
    hash: str


def canonical(fields: dict[str, Any]) -> bytes:
    return json.dumps(fields, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode("ascii")


def link_hash(record: AuditRecord, seq: int, prev_hash: str) -> str:
    body = {**record_to_dict(record), "seq": seq, "prev_hash": prev_hash, "v": CHAIN_VERSION}
    return hashlib.sha256(canonical(body)).hexdigest()


def emitted_hash(event: dict[str, Any]) -> str:
    """The hash a receiver recomputes from an event as a sink emitted it (`ChainedEvent.as_dict()`)."""
    body = {k: v for k, v in event.items() if k != "hash"} | {"v": CHAIN_VERSION}
    return hashlib.sha256(canonical(body)).hexdigest()


def _for_update(backend: Backend) -> str:
    # SQLite has no row locks: its BEGIN IMMEDIATE holds the whole database already
    return " FOR UPDATE" if backend.name == "postgres" else ""


async def read_link(
    tx: Tx | Backend, name: str, *, lock: bool = False, backend: Backend | None = None
) -> Link:
    suffix = _for_update(backend) if lock and backend is not None else ""
    rows = await tx.fetch(f"SELECT seq, hash FROM audit_chain WHERE name = ?{suffix}", [name])
    return Link(int(rows[0]["seq"]), str(rows[0]["hash"]))


class ChainWriter:
    """Inserts a batch's events with their chain fields and moves the head, in the open transaction."""

    def __init__(self, backend: Backend, codec: Codec) -> None:
        self._backend = backend
        self._codec = codec

    async def append(self, tx: Tx, events: Sequence[AuditRecord]) -> Link | None:
        """Chain and insert `events` in this order; the new head (None when there were none)."""
        if not events:
            return None
        head = await read_link(tx, "head", lock=True, backend=self._backend)
        seq, prev = head.seq, head.hash
        rows: list[list[Any]] = []
        for event in events:
            seq += 1
            digest = link_hash(event, seq, prev)
            rows.append([*self._codec.event_values(event), seq, prev, digest])
            prev = digest
        for start in range(0, len(rows), CHUNK_ROWS):
            chunk = rows[start : start + CHUNK_ROWS]
            await tx.execute(
                multi_insert("events", CHAINED_EVENT_COLUMNS, len(chunk)), [v for r in chunk for v in r]
            )
        await tx.execute("UPDATE audit_chain SET seq = ?, hash = ? WHERE name = 'head'", [seq, prev])
        return Link(seq, prev)


async def trim(tx: Tx, backend: Backend, cutoff: Any, limit: int) -> int:
    """Delete up to `limit` of the oldest events, a prefix in seq order that ends before the first event at or
    after `cutoff` (encoded time), and move the anchor to the newest one deleted. Returns rows deleted."""
    anchor = await read_link(tx, "anchor", lock=True, backend=backend)
    young = (await tx.fetch("SELECT min(seq) AS seq FROM events WHERE ts >= ?", [cutoff]))[0]["seq"]
    last = int(young) - 1 if young is not None else (await read_link(tx, "head")).seq
    last = min(last, anchor.seq + limit)
    if last <= anchor.seq:
        return 0
    deleted = await tx.fetch(
        "DELETE FROM events WHERE seq > ? AND seq <= ? RETURNING seq, hash", [anchor.seq, last]
    )
    if not deleted:
        return 0
    newest = max(deleted, key=lambda row: int(row["seq"]))
    await tx.execute(
        "UPDATE audit_chain SET seq = ?, hash = ? WHERE name = 'anchor'", [int(newest["seq"]), newest["hash"]]
    )
    return len(deleted)


def chained(codec: Codec, row: Row) -> ChainedEvent:
    return ChainedEvent(int(row["seq"]), row["prev_hash"], row["hash"], codec.record(row, event_id=True))


async def read_after(backend: Backend, codec: Codec, after: int, limit: int) -> list[ChainedEvent]:
    """Events with seq > after, in seq order (store order), at most `limit`."""
    rows = await backend.fetch(
        f"SELECT {SELECT_CHAINED} FROM events WHERE seq > ? ORDER BY seq LIMIT ?", [after, limit]
    )
    return [chained(codec, row) for row in rows]


async def backfill(tx: Tx, backend: Backend) -> int:
    """Migration to the chained schema: number and hash the events written before it, in (ts, event_id)
    order, and set the head. Returns the events chained."""
    codec = Codec(backend)
    seq, prev = 0, GENESIS
    while True:
        rows = await tx.fetch(
            f"SELECT {SELECT_EVENT} FROM events WHERE seq IS NULL ORDER BY ts, event_id LIMIT ?", [CHUNK_ROWS]
        )
        if not rows:
            break
        for row in rows:
            record = codec.record(row, event_id=True)
            seq += 1
            digest = link_hash(record, seq, prev)
            await tx.execute(
                "UPDATE events SET seq = ?, prev_hash = ?, hash = ? WHERE event_id = ?",
                [seq, prev, digest, record.event_id],
            )
            prev = digest
    await tx.execute("UPDATE audit_chain SET seq = ?, hash = ? WHERE name = 'head'", [seq, prev])
    return seq
