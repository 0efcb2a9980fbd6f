"""RFC 5424 syslog over TCP (RFC 6587 octet counting), TLS optional (RFC 5425).

Syslog over TCP has no acknowledgement, so "the receiver has it" is decided in two steps:

1. the bytes left this machine: the transport's buffer and the kernel's send queue (TIOCOUTQ) are empty, so
   the receiver's TCP stack has acknowledged every byte;
2. the connection stayed up for `settle_seconds` afterwards. A receiver that dies (killed, restarted) loses
   what sat in its socket buffer or its memory queue; its kernel closes or resets the connection, which we
   see (EOF) well within the settle time. Then everything after the last confirmed event is sent again.

Only confirmed events move the cursor, so a broker restart resends the unconfirmed ones too. The price is
duplicates after a break (each event carries its event_id and seq to de-duplicate on) and a cursor that
trails the stream by `settle_seconds`. What it cannot cover: a receiver that accepts bytes and then keeps
them unwritten for longer than `settle_seconds` before losing them (configure it to write synchronously or
to a disk-assisted queue, see README).
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import os
import socket
import ssl
import struct
import termios
import time
from collections import deque
from collections.abc import Callable, Sequence

from broker._kits.rfc3339 import format_time
from broker._kits.tls import client_ssl_context
from broker.audit.chain import ChainedEvent
from broker.domain.streams import FACILITY_CODES

from .base import FailureKind, SinkError
from .formats import EventFormat
from .targets import SyslogTarget

# RFC 5424 severities
_SEVERITY = {"issued": 6, "expired": 6, "revoked": 6, "denied": 5, "failed": 4, "aborted": 4}
# batches sent but not yet settled; past this, send() waits for the oldest to settle
_MAX_PENDING = 4096
_POLL = 0.005


def split_address(address: str) -> tuple[str, int]:
    host, _, port = address.rpartition(":")
    return host.strip("[]"), int(port)


def unsent_bytes(transport: asyncio.BaseTransport) -> int:
    """Bytes not yet acknowledged by the peer's TCP stack: our buffer plus the kernel's send queue."""
    buffered = transport.get_write_buffer_size() if isinstance(transport, asyncio.WriteTransport) else 0
    sock = transport.get_extra_info("socket")
    if sock is None:
        return buffered
    try:
        raw = fcntl.ioctl(sock.fileno(), termios.TIOCOUTQ, struct.pack("i", 0))
    except OSError:
        return buffered
    queued: int = struct.unpack("i", raw)[0]
    return buffered + queued


class SyslogSink:
    def __init__(
        self,
        target: SyslogTarget,
        fmt: EventFormat,
        *,
        ssl_context: ssl.SSLContext | None = None,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self.name = target.name
        self._target = target
        self._format = fmt
        self._host, self._port = split_address(target.address)
        self._ssl = None
        if target.tls:
            self._ssl = ssl_context or client_ssl_context(
                cafile=target.ca_file, certfile=target.client_cert, keyfile=target.client_key
            )
        self._hostname = target.hostname or socket.gethostname().split(".")[0] or "-"
        self._facility = FACILITY_CODES[target.facility]
        self._monotonic = monotonic
        self._writer: asyncio.StreamWriter | None = None
        self._watcher: asyncio.Task[None] | None = None
        self._broken: str | None = None
        # (last seq of a batch, when the receiver's TCP stack had all of it)
        self._pending: deque[tuple[int, float]] = deque()
        self._acknowledged = 0

    # -- wire format -------------------------------------------------------------------------------------------
    def message(self, event: ChainedEvent) -> bytes:
        record = event.record
        pri = self._facility * 8 + _SEVERITY.get(record.event, 5)
        header = (
            f"<{pri}>1 {format_time(record.time, 'microseconds')} {self._hostname} {self._target.app_name} {os.getpid()} "
            f"{record.event} - "
        )
        return header.encode() + self._format.encode(event)

    def frame(self, event: ChainedEvent) -> bytes:
        message = self.message(event)
        return str(len(message)).encode() + b" " + message

    # -- connection ----------------------------------------------------------------------------------------------
    async def _connect(self) -> asyncio.StreamWriter:
        if self._writer is not None:
            return self._writer
        try:
            async with asyncio.timeout(self._target.connect_timeout_seconds):
                reader, writer = await asyncio.open_connection(
                    self._host, self._port, ssl=self._ssl, server_hostname=self._host if self._ssl else None
                )
        except ssl.SSLError as err:
            raise SinkError(FailureKind.TLS, f"{self._target.address}: {err.reason or err}") from None
        except TimeoutError:
            raise SinkError(FailureKind.TIMEOUT, f"{self._target.address}: connect timed out") from None
        except OSError as err:
            raise SinkError(FailureKind.CONNECT, f"{self._target.address}: {err.strerror or err}") from None
        # not set_write_buffer_limits(high=0): asyncio's TLS transport can then stall drain() for good (seen on
        # 3.11); _flushed() polls the buffer down to empty instead
        self._writer, self._broken = writer, None
        self._watcher = asyncio.create_task(self._watch(reader), name=f"audit-sink-{self.name}-eof")
        return writer

    async def _watch(self, reader: asyncio.StreamReader) -> None:
        """A syslog receiver never sends: EOF or an error on the read side means the connection is gone."""
        try:
            while await reader.read(4096):
                pass
            self._broken = "the receiver closed the connection"
        except (OSError, ssl.SSLError) as err:
            self._broken = f"connection lost: {err}"

    def _check(self) -> None:
        if self._broken is not None:
            raise SinkError(FailureKind.CLOSED, f"{self._target.address}: {self._broken}")

    async def _flushed(self, writer: asyncio.StreamWriter) -> None:
        await writer.drain()
        while unsent_bytes(writer.transport) > 0:
            self._check()
            await asyncio.sleep(_POLL)

    # -- the Sink protocol ---------------------------------------------------------------------------------------
    def _settled(self) -> int:
        self._check()
        horizon = self._monotonic() - self._target.settle_seconds
        while self._pending and self._pending[0][1] <= horizon:
            self._acknowledged = self._pending.popleft()[0]
        return self._acknowledged

    async def send(self, events: Sequence[ChainedEvent]) -> int:
        if not events:
            return await self.acknowledged()
        while len(self._pending) >= _MAX_PENDING:
            await asyncio.sleep(self._target.settle_seconds / 4 or _POLL)
            self._settled()
        writer = await self._connect()
        self._check()
        try:
            writer.write(b"".join(self.frame(e) for e in events))
            async with asyncio.timeout(self._target.write_timeout_seconds):
                await self._flushed(writer)
        except TimeoutError:
            raise SinkError(
                FailureKind.TIMEOUT,
                f"{self._target.address}: not acknowledged within {self._target.write_timeout_seconds:g}s",
            ) from None
        except (OSError, ssl.SSLError) as err:
            raise SinkError(FailureKind.CLOSED, f"{self._target.address}: {err}") from None
        self._pending.append((events[-1].seq, self._monotonic()))
        return self._settled()

    async def acknowledged(self) -> int:
        return self._settled()

    async def reset(self) -> None:
        writer, watcher = self._writer, self._watcher
        self._writer, self._watcher, self._broken = None, None, None
        self._pending.clear()
        if watcher is not None:
            watcher.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await watcher
        if writer is not None:
            writer.transport.abort()

    async def close(self) -> None:
        """Close cleanly (TLS close_notify): an abort can make a receiver drop the last records it read. What is
        still unconfirmed is sent again by the next run anyway: the cursor has not moved past it."""
        writer = self._writer
        if writer is not None and self._broken is None:
            writer.close()
            with contextlib.suppress(OSError, ssl.SSLError, TimeoutError):
                async with asyncio.timeout(self._target.connect_timeout_seconds):
                    await writer.wait_closed()
        await self.reset()
