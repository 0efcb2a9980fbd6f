"""A caller cancelled while its group-commit write completes stays cancelled (Python 3.11's wait_for would
return the result instead: a janitor cancelled at that moment never stopped, and Broker.stop() hung)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from typing import Any

import pytest

from broker.audit.groupcommit import GroupCommitter


@contextlib.asynccontextmanager
async def no_transaction() -> AsyncIterator[Any]:
    yield None


async def test_cancellation_during_the_commit_is_not_swallowed() -> None:
    loop = asyncio.get_running_loop()
    callers: list[asyncio.Task[Any]] = []

    async def run_batch(_tx: Any, requests: list[Any]) -> list[Any]:
        # runs before the writer sets the results: the cancel lands after the future is done
        loop.call_soon(callers[0].cancel)
        return [True for _ in requests]

    committer = GroupCommitter(no_transaction, run_batch, max_delay=0, timeout=5)
    committer.start()
    try:
        callers.append(asyncio.create_task(committer.submit("write")))
        with pytest.raises(asyncio.CancelledError):
            await callers[0]
    finally:
        await committer.stop()
