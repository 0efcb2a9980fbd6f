"""Streaming the audit trail to where operators already look: syslog, webhooks, files; CloudEvents or OCSF.

Delivery is at least once, in store order, from a cursor persisted in the audit store (delivery.py); the
broker runs it on the janitor leader (broker/audit_tasks.py).
"""

from __future__ import annotations

from .base import FailureKind, OnRetry, Sink, SinkError
from .delivery import Delivery, Lag
from .file import FileSink
from .formats import make_format
from .settings import FileSinkSettings, SinkSettings, SyslogSinkSettings, WebhookSinkSettings
from .syslog import SyslogSink
from .webhook import WebhookSink


def make_sink(settings: SinkSettings, *, product_version: str, on_retry: OnRetry = lambda _k: None) -> Sink:
    """Raises ValueError (TlsFileError, an unreadable token file) when a file the sink needs is unusable."""
    fmt = make_format(settings.format, source=settings.source, product_version=product_version)
    if isinstance(settings, SyslogSinkSettings):
        return SyslogSink(settings, fmt)
    if isinstance(settings, WebhookSinkSettings):
        return WebhookSink(settings, fmt, on_retry=on_retry)
    return FileSink(
        settings.name,
        settings.path,
        fmt,
        max_bytes=settings.max_bytes,
        backups=settings.backups,
        fsync=settings.fsync,
    )


__all__ = [
    "Delivery",
    "FailureKind",
    "FileSink",
    "FileSinkSettings",
    "Lag",
    "Sink",
    "SinkError",
    "SinkSettings",
    "SyslogSink",
    "SyslogSinkSettings",
    "WebhookSink",
    "WebhookSinkSettings",
    "make_sink",
]
