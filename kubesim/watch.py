"""Watch: `?watch=true` streams newline-delimited `{"type":..., "object":...}` events, as the watch cache does.

A watch without resourceVersion (or "0") first sends ADDED for every existing object; one with a
resourceVersion replays what happened after it from a bounded event log, and answers an ERROR event with a
410 Expired Status when that history is gone (client-go then relists).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import json
import time
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aiohttp import web

from . import tables
from .labels import parse_selector
from .state import EventType, Obj, ResourceType, Store
from .status import ApiError, bad_request

if TYPE_CHECKING:
    from .resources import ResourceHandler, Strategy

# real servers pick a random timeout in [min-request-timeout, 2x); clients re-watch either way
DEFAULT_TIMEOUT = 1800.0


@dataclass(frozen=True)
class Event:
    revision: int
    type: EventType
    key: tuple[str, str]
    obj: Obj


class EventLog:
    """Every store mutation, in order (bounded), and the queues of the watches in progress."""

    def __init__(self, store: Store, size: int = 10000) -> None:
        self._store = store
        self._events: collections.deque[Event] = collections.deque(maxlen=size)
        self._first_revision = store.revision
        self._subscribers: set[asyncio.Queue[Event | None]] = set()
        store.add_listener(self._on_event)

    def _on_event(self, event: EventType, rtype: ResourceType, obj: Obj) -> None:
        rv = int(obj.get("metadata", {}).get("resourceVersion") or 0)
        entry = Event(rv, event, rtype.key, obj)
        if len(self._events) == self._events.maxlen:
            self._first_revision = self._events[0].revision
        self._events.append(entry)
        for queue in list(self._subscribers):
            queue.put_nowait(entry)

    def since(self, revision: int) -> list[Event] | None:
        """Events after `revision`, or None when the log no longer reaches back that far."""
        if revision < self._first_revision:
            return None
        return [e for e in self._events if e.revision > revision]

    def subscribe(self) -> asyncio.Queue[Event | None]:
        queue: asyncio.Queue[Event | None] = asyncio.Queue()
        self._subscribers.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Event | None]) -> None:
        self._subscribers.discard(queue)

    def close(self) -> None:
        """End every watch in progress (server shutdown)."""
        for queue in list(self._subscribers):
            queue.put_nowait(None)
        self._store.remove_listener(self._on_event)


def _expired(requested: str, oldest: int) -> Obj:
    return ApiError(410, "Expired", f"too old resource version: {requested} ({oldest})").to_status()


async def serve_watch(
    request: web.Request, handler: ResourceHandler, strategy: Strategy, namespace: str | None, name: str
) -> web.StreamResponse:
    from .resources import field_match

    rtype = strategy.rtype
    labels = parse_selector(request.query.get("labelSelector"))
    field_selector = request.query.get("fieldSelector", "")
    as_table = tables.wants_table(request.headers.get("Accept", ""))
    include = request.query.get("includeObject", "Metadata")
    try:
        timeout = float(request.query.get("timeoutSeconds") or DEFAULT_TIMEOUT)
    except ValueError:
        raise bad_request("timeoutSeconds must be a number") from None
    requested_rv = request.query.get("resourceVersion", "")
    if requested_rv and not requested_rv.isdigit():
        raise bad_request(f'resourceVersion: Invalid value: "{requested_rv}": must be a number')

    def matches(obj: Obj) -> bool:
        meta = obj.get("metadata", {})
        if namespace is not None and meta.get("namespace") != namespace:
            return False
        if name and meta.get("name") != name:
            return False
        return labels(meta.get("labels") or {}) and field_match(strategy, field_selector, obj)

    events = handler.events
    queue = events.subscribe()
    try:
        initial: list[tuple[str, Obj]] = []
        if requested_rv in ("", "0"):
            initial = [("ADDED", o) for o in handler.store.list(rtype, namespace) if matches(o)]
        else:
            past = events.since(int(requested_rv))
            if past is None:
                initial = [("ERROR", _expired(requested_rv, handler.store.revision))]
            else:
                initial = [(e.type, e.obj) for e in past if e.key == rtype.key and matches(e.obj)]
            # drop queued live events already covered by the replay
            while not queue.empty():
                queue.get_nowait()

        response = web.StreamResponse(status=200, headers={"Content-Type": "application/json"})
        response.enable_chunked_encoding()
        await response.prepare(request)

        async def send(event_type: str, obj: Obj) -> None:
            if as_table and event_type != "ERROR":
                rv = obj.get("metadata", {}).get("resourceVersion", "")
                obj = tables.table(strategy.columns, [obj], include, rv)
            line = json.dumps({"type": event_type, "object": obj}, separators=(",", ":")) + "\n"
            await response.write(line.encode())

        with contextlib.suppress(ConnectionError):
            for event_type, obj in initial:
                await send(event_type, obj)
            if initial and initial[0][0] == "ERROR":
                return response
            deadline = time.monotonic() + timeout
            while (remaining := deadline - time.monotonic()) > 0:
                try:
                    event = await asyncio.wait_for(queue.get(), timeout=min(remaining, 5.0))
                except TimeoutError:
                    if request.transport is None or request.transport.is_closing():
                        break
                    continue
                if event is None:
                    break
                if event.key == rtype.key and matches(event.obj):
                    await send(event.type, event.obj)
        return response
    finally:
        events.unsubscribe(queue)
