"""What a sink is to the delivery loop, and how it fails."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from enum import StrEnum
from typing import Protocol

from broker.audit.chain import ChainedEvent


class FailureKind(StrEnum):
    """Why a delivery attempt failed (the `kind` label of token_broker_audit_sink_failures_total)."""

    CONNECT = "connect"  # no connection (refused, unreachable, DNS)
    TLS = "tls"  # handshake or certificate verification
    TIMEOUT = "timeout"  # no acknowledgement in time
    CLOSED = "closed"  # the receiver closed or reset the connection
    REJECTED = "rejected"  # the receiver answered 4xx
    SERVER = "server"  # the receiver answered 5xx (or 429)
    WRITE = "write"  # the local file could not be written
    STORE = "store"  # the audit store could not be read, or the cursor not written


class SinkError(Exception):
    def __init__(self, kind: FailureKind, detail: str, *, retry_after: float | None = None) -> None:
        super().__init__(f"{kind}: {detail}")
        self.kind = kind
        self.detail = detail
        self.retry_after = retry_after


# counts one failed attempt that the sink retries by itself (the webhook's tenacity retries)
OnRetry = Callable[[FailureKind], None]


class Sink(Protocol):
    name: str

    async def send(self, events: Sequence[ChainedEvent]) -> int:
        """Deliver `events` (consecutive, in seq order); the highest seq the receiver has acknowledged so far,
        which may lag behind the last one sent (syslog). SinkError when the attempt failed: the delivery loop
        then calls `reset()` and sends again everything after the last acknowledged seq."""
        ...

    async def acknowledged(self) -> int:
        """The highest seq acknowledged so far (0: none), without sending anything (lets syslog settle)."""
        ...

    async def reset(self) -> None:
        """Drop the connection (or file handle) after a failure; the next send opens a fresh one."""
        ...

    async def close(self) -> None: ...
