"""One journal of what a use case did, in order, across the cluster and the audit store."""

from __future__ import annotations

import inspect
from typing import Any


class JournaledStore:
    """An AuditStore that writes "store.<method>" to a journal (a MemoryKube's) before each call, and can be
    told to fail a method: `fail["complete_issuance"] = BrokerError(...)`."""

    def __init__(self, inner: Any, journal: list[str]) -> None:
        self.inner = inner
        self.journal = journal
        self.fail: dict[str, BaseException] = {}

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self.inner, name)
        if not inspect.iscoroutinefunction(attr):
            return attr

        async def call(*args: Any, **kwargs: Any) -> Any:
            self.journal.append(f"store.{name}")
            if name in self.fail:
                raise self.fail[name]
            return await attr(*args, **kwargs)

        return call
