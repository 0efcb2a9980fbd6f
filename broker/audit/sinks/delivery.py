"""At-least-once delivery of the event log to one sink, driven by a cursor persisted in the audit store.

`sink_cursors` holds one row per sink: every event with seq <= cursor was acknowledged by that sink. A round
reads the events after what was last sent, in seq order (= commit order, chain.py), sends them, and moves
the cursor to what the sink acknowledged — only then. After a failure the sink is reset and everything after
the cursor is sent again; after a restart or a change of leader the cursor is read back from the store. So a
sink that is down for minutes, a broker restart, or a leader handover loses nothing and keeps the order;
what it may cause is an event delivered twice (each carries its event_id and seq to de-duplicate on).

The cursor only moves forward (`... WHERE seq < ?`), so two replicas that both believe they lead for a moment
cannot move it back. Memory is bounded: at most one batch is held.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from broker.audit.backend import Tx
from broker.audit.chain import read_after, read_link
from broker.audit.records import utc_now
from broker.audit.sqlstore import SqlAuditStore

from .base import Sink

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Lag:
    # events committed but not yet acknowledged by the sink
    events: int
    # age of the oldest of them (0 when caught up)
    seconds: float


class Delivery:
    def __init__(
        self,
        store: SqlAuditStore,
        sink: Sink,
        *,
        batch_size: int,
        start_at: Literal["oldest", "newest"] = "oldest",
        on_delivered: Callable[[int], None] = lambda _n: None,
        clock: Callable[[], datetime] = utc_now,
    ) -> None:
        self.sink = sink
        self.name = sink.name
        self._store = store
        self._batch_size = batch_size
        self._start_at = start_at
        self._on_delivered = on_delivered
        self._clock = clock
        # None until read from the store (again after forget())
        self._cursor: int | None = None
        self._sent = 0

    @property
    def cursor(self) -> int | None:
        return self._cursor

    async def _load(self) -> int:
        backend = self._store.backend
        start = (await read_link(backend, "head")).seq if self._start_at == "newest" else 0
        now = backend.encode_time(self._clock())

        async def ensure(tx: Tx) -> int:
            await tx.execute(
                "INSERT INTO sink_cursors (sink, seq, updated_at) VALUES (?, ?, ?) ON CONFLICT (sink) DO NOTHING",
                [self.name, start, now],
            )
            rows = await tx.fetch("SELECT seq FROM sink_cursors WHERE sink = ?", [self.name])
            return int(rows[0]["seq"])

        cursor = await self._store.in_writer(ensure)
        self._cursor = self._sent = cursor
        return cursor

    async def _advance(self, seq: int) -> None:
        now = self._store.backend.encode_time(self._clock())

        async def move(tx: Tx) -> None:
            await tx.execute(
                "UPDATE sink_cursors SET seq = ?, updated_at = ? WHERE sink = ? AND seq < ?",
                [seq, now, self.name, seq],
            )

        await self._store.in_writer(move)
        assert self._cursor is not None
        self._on_delivered(seq - self._cursor)
        self._cursor = seq

    async def step(self) -> bool:
        """One round; True when a full batch went out (more may be waiting: call again at once).

        Raises SinkError (the sink failed) or BrokerError 503 (the store did): call `recover()` then."""
        cursor = self._cursor if self._cursor is not None else await self._load()
        events = await read_after(self._store.backend, self._store.codec, self._sent, self._batch_size)
        if events and events[0].seq != self._sent + 1:
            log.warning(
                "audit events were removed by retention before this sink received them",
                extra={"sink": self.name, "from_seq": self._sent + 1, "to_seq": events[0].seq - 1},
            )
        if events:
            acknowledged = await self.sink.send(events)
            self._sent = events[-1].seq
        else:
            acknowledged = await self.sink.acknowledged()
        if acknowledged > cursor:
            await self._advance(acknowledged)
        return len(events) == self._batch_size

    async def recover(self) -> None:
        """After a failure: drop the connection and send again from the cursor, as the store has it."""
        await self.sink.reset()
        self.forget()

    def forget(self) -> None:
        """Read the cursor back from the store before the next round (another replica may have moved it)."""
        self._cursor = None

    async def lag(self) -> Lag:
        """From the store, not from memory: every replica reports the same, leading or not."""
        backend = self._store.backend
        head = await read_link(backend, "head")
        rows = await backend.fetch("SELECT seq FROM sink_cursors WHERE sink = ?", [self.name])
        cursor = int(rows[0]["seq"]) if rows else (head.seq if self._start_at == "newest" else 0)
        if cursor >= head.seq:
            return Lag(0, 0.0)
        # the first undelivered event's age (by seq, an index lookup: not the minimum over all of them)
        oldest = await backend.fetch("SELECT ts FROM events WHERE seq > ? ORDER BY seq LIMIT 1", [cursor])
        seconds = 0.0
        if oldest:
            seconds = max(0.0, (self._clock() - backend.decode_time(oldest[0]["ts"])).total_seconds())
        return Lag(head.seq - cursor, seconds)
