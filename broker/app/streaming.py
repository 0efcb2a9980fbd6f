"""[[audit.sinks]] and the checkpoint key turned into the streaming job (broker/background/streaming.py), and
the files they need checked before anything starts."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any, overload

from broker import __version__, metrics
from broker._kits.tls import client_ssl_context
from broker.audit import AuditStore, SqlAuditStore, TeeStore
from broker.audit.checkpoints import Checkpointer, load_private_key
from broker.audit.sinks import (
    Delivery,
    FailureKind,
    FileTarget,
    SinkTarget,
    SyslogTarget,
    WebhookTarget,
    make_sink,
)
from broker.audit.sinks.webhook import read_token
from broker.background.leader import LeaseElector
from broker.background.streaming import AuditStreaming
from broker.settings import AuditSettings
from broker.settings.sinks import FileSinkSettings, SinkSettings, SyslogSinkSettings, WebhookSinkSettings

_TARGETS: dict[type[Any], type[SinkTarget]] = {
    SyslogSinkSettings: SyslogTarget,
    WebhookSinkSettings: WebhookTarget,
    FileSinkSettings: FileTarget,
}


@overload
def sink_target(settings: SyslogSinkSettings) -> SyslogTarget: ...
@overload
def sink_target(settings: WebhookSinkSettings) -> WebhookTarget: ...
@overload
def sink_target(settings: FileSinkSettings) -> FileTarget: ...
def sink_target(settings: SinkSettings) -> SinkTarget:
    """The sink's plain target: each of its fields taken from the validated settings of the same name."""
    target = _TARGETS[type(settings)]
    return target(**{f.name: getattr(settings, f.name) for f in dataclasses.fields(target)})


def build_streaming(
    store: AuditStore, settings: AuditSettings, elector: LeaseElector | None
) -> AuditStreaming | None:
    """The configured sinks and checkpoint signer over `store`; None when neither is configured.

    Raises ValueError when a file they need (CA bundle, client certificate, token, signing key) is unusable."""
    if not settings.sinks and settings.checkpoint_key_file is None:
        return None
    sql = store.inner if isinstance(store, TeeStore) else store
    if not isinstance(sql, SqlAuditStore):
        raise ValueError("audit sinks and checkpoints need the SQL audit store")
    deliveries = [
        Delivery(
            sql,
            make_sink(
                sink_target(sink),
                product_version=__version__,
                on_retry=functools.partial(_count_retry, sink.name),
            ),
            batch_size=sink.batch_size,
            start_at=sink.start_at,
            on_delivered=functools.partial(metrics.sink_delivered, sink.name),
        )
        for sink in settings.sinks
    ]
    checkpointer = None
    if settings.checkpoint_key_file is not None:
        checkpointer = Checkpointer(sql, load_private_key(settings.checkpoint_key_file))
    return AuditStreaming(
        deliveries,
        checkpointer,
        elector,
        poll_interval=settings.sink_poll_interval_seconds,
        checkpoint_interval=settings.checkpoint_interval_seconds,
    )


def _count_retry(sink: str, kind: FailureKind) -> None:
    metrics.sink_failure(sink, kind.value)


def stream_file_problems(settings: AuditSettings) -> list[tuple[str, str]]:
    """(key path, problem) for each file the sinks and the checkpoint signer need and cannot use: what
    `config check` and `serve` report before anything starts."""
    problems = [p for i, sink in enumerate(settings.sinks) if (p := _sink_problem(f"audit.sinks[{i}]", sink))]
    if settings.checkpoint_key_file is not None:
        try:
            load_private_key(settings.checkpoint_key_file)
        except OSError as err:
            problems.append(("audit.checkpoint_key_file", f"{err.filename}: {err.strerror or err}"))
        except ValueError as err:
            problems.append(("audit.checkpoint_key_file", str(err)))
    return problems


def _sink_problem(key: str, sink: SinkSettings) -> tuple[str, str] | None:
    if isinstance(sink, FileSinkSettings):
        if not sink.path.parent.is_dir():
            return f"{key}.path", f"{sink.path}: directory {sink.path.parent} does not exist"
        return None
    try:
        if isinstance(sink, WebhookSinkSettings) or sink.tls:
            client_ssl_context(cafile=sink.ca_file, certfile=sink.client_cert, keyfile=sink.client_key)
        if isinstance(sink, WebhookSinkSettings) and sink.bearer_token_file is not None:
            read_token(sink.bearer_token_file)
    except OSError as err:
        return key, f"{err.filename}: {err.strerror or err}"
    except ValueError as err:
        return key, str(err)
    return None
