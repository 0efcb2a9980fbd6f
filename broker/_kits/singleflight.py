"""Collapse concurrent calls for the same key into one (Go's singleflight)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class SingleFlight(Generic[K, V]):
    """While a call for `key` runs, later callers await its result instead of starting their own.

    The call runs as its own task: a caller that is cancelled (its HTTP client went away) stops waiting but
    does not cancel the work the other callers are waiting for.
    """

    def __init__(self) -> None:
        self._inflight: dict[K, asyncio.Task[V]] = {}

    def __len__(self) -> int:
        return len(self._inflight)

    async def do(self, key: K, fn: Callable[[], Awaitable[V]]) -> V:
        task = self._inflight.get(key)
        if task is None:
            task = asyncio.ensure_future(fn())
            self._inflight[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: K, task: asyncio.Task[V]) -> None:
        if self._inflight.get(key) is task:
            del self._inflight[key]
        # retrieve the exception so a flight whose callers all went away does not warn "never retrieved"
        if not task.cancelled():
            task.exception()
