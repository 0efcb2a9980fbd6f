"""Streaming the audit trail to where operators already look: syslog, webhooks, files; CloudEvents or OCSF.

Delivery is at least once, in store order, from a cursor persisted in the audit store (delivery.py); the
broker runs it on the janitor leader (broker/background/streaming.py).
"""

from __future__ import annotations

from .base import FailureKind, OnRetry, Sink, SinkError
from .delivery import Delivery, Lag
from .file import FileSink
from .formats import make_format
from .syslog import SyslogSink
from .targets import FileTarget, SinkTarget, SyslogTarget, WebhookTarget
from .webhook import WebhookSink


def make_sink(target: SinkTarget, *, product_version: str, on_retry: OnRetry = lambda _k: None) -> Sink:
    """Raises ValueError (TlsFileError, an unreadable token file) when a file the sink needs is unusable."""
    fmt = make_format(target.format, source=target.source, product_version=product_version)
    if isinstance(target, SyslogTarget):
        return SyslogSink(target, fmt)
    if isinstance(target, WebhookTarget):
        return WebhookSink(target, fmt, on_retry=on_retry)
    return FileSink(
        target.name,
        target.path,
        fmt,
        max_bytes=target.max_bytes,
        backups=target.backups,
        fsync=target.fsync,
    )


__all__ = [
    "Delivery",
    "FailureKind",
    "FileSink",
    "FileTarget",
    "Lag",
    "Sink",
    "SinkError",
    "SinkTarget",
    "SyslogSink",
    "SyslogTarget",
    "WebhookSink",
    "WebhookTarget",
    "make_sink",
]
