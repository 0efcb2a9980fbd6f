"""Where one sink sends the trail, as plain values: the app builds these from `[[audit.sinks]]`
(broker/settings/sinks.py validates them there); the sinks never see the config format."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from broker.domain.streams import Facility, Format, StartAt


@dataclass(frozen=True, kw_only=True)
class Target:
    # the delivery cursor's key and the metrics' `sink` label
    name: str
    format: Format = "cloudevents"
    batch_size: int = 100
    start_at: StartAt = "oldest"
    # CloudEvents `source`
    source: str = "/kube-token-broker"


@dataclass(frozen=True, kw_only=True)
class TlsFiles:
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None


@dataclass(frozen=True, kw_only=True)
class SyslogTarget(Target, TlsFiles):
    address: str
    tls: bool = False
    facility: Facility = "authpriv"
    app_name: str = "token-broker"
    hostname: str | None = None
    settle_seconds: float = 2.0
    connect_timeout_seconds: float = 5.0
    write_timeout_seconds: float = 10.0


@dataclass(frozen=True, kw_only=True)
class WebhookTarget(Target, TlsFiles):
    url: str
    headers: Mapping[str, str] = field(default_factory=dict)
    bearer_token_file: Path | None = None
    timeout_seconds: float = 10.0
    max_attempts: int = 5
    backoff_initial_seconds: float = 0.5
    backoff_max_seconds: float = 30.0


@dataclass(frozen=True, kw_only=True)
class FileTarget(Target):
    path: Path
    max_bytes: int = 100 * 1024 * 1024
    backups: int = 5
    fsync: bool = True


SinkTarget = SyslogTarget | WebhookTarget | FileTarget
