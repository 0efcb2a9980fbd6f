"""Group commit: concurrent writes share one transaction (and so one fsync / one round of WAL flushing).

A single writer task drains a bounded queue: it takes what is waiting, lingers at most `max_delay` for more,
up to `max_batch` requests, and hands them to `run_batch` inside one transaction. Each caller awaits its own
future. When the transaction fails, every request in it fails with the same 503 — none of them was committed.

`run_batch` must not raise for expected conditions (a duplicate id, a record in the wrong state): it returns
a result per request that says so, so one caller's conflict cannot abort the others' batch.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from contextlib import AbstractAsyncContextManager
from dataclasses import dataclass, replace
from typing import Any

from broker.domain.errors import BrokerError, audit_unavailable

from .backend import Tx

log = logging.getLogger(__name__)

_Item = tuple[object, "asyncio.Future[Any]"]
# runs one batch of requests in the open transaction; one result per request, in order
BatchFn = Callable[[Tx, list[Any]], Awaitable[list[Any]]]


@dataclass
class CommitStats:
    transactions: int = 0
    operations: int = 0
    failed_transactions: int = 0
    largest_batch: int = 0


class GroupCommitter:
    def __init__(
        self,
        transaction: Callable[[], AbstractAsyncContextManager[Tx]],
        run_batch: BatchFn,
        *,
        max_batch: int = 256,
        max_delay: float = 0.002,
        queue_size: int = 4096,
        timeout: float = 5.0,
    ) -> None:
        self._transaction = transaction
        self._run_batch = run_batch
        self._max_batch = max_batch
        self._max_delay = max_delay
        self._timeout = timeout
        self._queue: asyncio.Queue[_Item | None] = asyncio.Queue(maxsize=queue_size)
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.stats = CommitStats()

    @property
    def running(self) -> bool:
        return self._task is not None and not self._task.done() and not self._closing

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._run(), name="audit-group-commit")

    async def submit(self, request: object) -> Any:
        """Run `request` in the next batch; its result once the batch committed, else BrokerError 503."""
        if not self.running:
            raise audit_unavailable("audit writer is not running")
        future: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        try:
            self._queue.put_nowait((request, future))
        except asyncio.QueueFull:
            raise audit_unavailable(retry_after=1.0, reason="audit write queue is full") from None
        try:
            # on timeout the future is cancelled: the writer then skips the request if it has not started.
            # asyncio.timeout, not wait_for: Python 3.11's wait_for returns the result when the future completes
            # as the caller is being cancelled, swallowing the cancellation (a janitor then never stops)
            async with asyncio.timeout(self._timeout):
                return await future
        except TimeoutError:
            raise audit_unavailable(f"audit write not committed within {self._timeout:g}s") from None

    async def stop(self) -> None:
        """Commit what is queued, then end the writer (bounded by the write timeout)."""
        if self._task is None:
            return
        self._closing = True
        task = self._task
        try:
            self._queue.put_nowait(None)
        except asyncio.QueueFull:
            task.cancel()
        try:
            async with asyncio.timeout(self._timeout * 2):
                await asyncio.shield(task)
        except TimeoutError:
            task.cancel()
        except asyncio.CancelledError:
            if not task.done():
                raise
        self._fail_queued()

    def _fail_queued(self) -> None:
        while not self._queue.empty():
            item = self._queue.get_nowait()
            if item is not None and not item[1].done():
                item[1].set_exception(audit_unavailable("audit store closed"))

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        stopping = False
        while not stopping:
            first = await self._queue.get()
            if first is None:
                break
            batch = [first]
            deadline = loop.time() + self._max_delay
            while len(batch) < self._max_batch:
                try:
                    item = self._queue.get_nowait()
                except asyncio.QueueEmpty:
                    remaining = deadline - loop.time()
                    if remaining <= 0:
                        break
                    try:
                        async with asyncio.timeout(remaining):
                            item = await self._queue.get()
                    except TimeoutError:
                        break
                if item is None:
                    stopping = True
                    break
                batch.append(item)
            await self._commit(batch)

    async def _commit(self, batch: list[_Item]) -> None:
        live = [(request, fut) for request, fut in batch if not fut.done()]
        if not live:
            return
        try:
            async with asyncio.timeout(self._timeout), self._transaction() as tx:
                results = await self._run_batch(tx, [request for request, _ in live])
        except Exception as err:
            self.stats.failed_transactions += 1
            log.error("audit batch of %d writes failed: %s: %s", len(live), type(err).__name__, err)
            error = audit_unavailable(f"audit write failed: {type(err).__name__}: {err}")
            for _, fut in live:
                if not fut.done():
                    # one exception object per waiter: each gets its own traceback
                    own: BrokerError = replace(error)
                    own.__cause__ = err
                    fut.set_exception(own)
            return
        self.stats.transactions += 1
        self.stats.operations += len(live)
        self.stats.largest_batch = max(self.stats.largest_batch, len(live))
        for (_, fut), result in zip(live, results, strict=True):
            if not fut.done():
                fut.set_result(result)
