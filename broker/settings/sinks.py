"""`[[audit.sinks]]`: where the audit trail is streamed, in which format (pydantic: the config edge; the app
turns each into a broker.audit.sinks target)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator

from broker.domain.streams import Facility, Format, StartAt

from .paths import resolve_config_path

_SINK_NAME = re.compile(r"[a-z0-9][a-z0-9_-]{0,62}")
_HOST_PORT = re.compile(r"(?:\[[0-9a-fA-F:.]+\]|[A-Za-z0-9.-]+):([0-9]{1,5})")
# RFC 5424 APP-NAME and HOSTNAME: printable US-ASCII without spaces
_PRINTUSASCII = re.compile(r"[!-~]+")


class _Sink(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    # the delivery cursor's key and the metrics' `sink` label: renaming a sink starts it over
    name: str
    format: Format = "cloudevents"
    # events per delivery (a webhook POST, a run of syslog frames, a file write)
    batch_size: int = Field(default=100, ge=1, le=1000)
    # where a sink seen for the first time starts: the whole retained trail, or events from now on
    start_at: StartAt = "oldest"
    # CloudEvents `source` (a URI reference naming this broker)
    source: str = Field(default="/kube-token-broker", min_length=1, max_length=512)

    @field_validator("name")
    @classmethod
    def _name(cls, value: str) -> str:
        if _SINK_NAME.fullmatch(value) is None:
            raise ValueError("must be 1-63 of a-z, 0-9, '_' and '-', starting with a letter or digit")
        return value


def _path(value: Path | None, info: ValidationInfo) -> Path | None:
    return None if value is None else resolve_config_path(value, info)


class _Tls(BaseModel):
    # PEM files; ca_file absent = the system trust store
    ca_file: Path | None = None
    client_cert: Path | None = None
    client_key: Path | None = None

    @field_validator("ca_file", "client_cert", "client_key")
    @classmethod
    def _paths(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _path(value, info)


class SyslogSinkSettings(_Sink, _Tls):
    """RFC 5424 messages over TCP (RFC 6587 octet counting), TLS optional (RFC 5425)."""

    kind: Literal["syslog"]
    # host:port of the receiver
    address: str
    tls: bool = False
    facility: Facility = "authpriv"
    app_name: str = Field(default="token-broker", max_length=48)
    # HOSTNAME of every message; default: this machine's name
    hostname: str | None = Field(default=None, max_length=255)
    # Syslog over TCP has no acknowledgement: bytes count as delivered once the receiver's TCP stack has
    # acknowledged them AND the connection stayed up this long afterwards; a connection that breaks
    # earlier has everything since the last confirmed event sent again
    settle_seconds: float = Field(default=2.0, ge=0, le=300)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    # the longest a batch may take to be acknowledged by the receiver's TCP stack
    write_timeout_seconds: float = Field(default=10.0, gt=0, le=300)

    @field_validator("address")
    @classmethod
    def _address(cls, value: str) -> str:
        match = _HOST_PORT.fullmatch(value)
        if match is None or not 0 < int(match.group(1)) < 65536:
            raise ValueError("must be host:port (an IPv6 address in brackets)")
        return value

    @field_validator("app_name", "hostname")
    @classmethod
    def _printable(cls, value: str | None) -> str | None:
        if value is not None and _PRINTUSASCII.fullmatch(value) is None:
            raise ValueError("must be printable ASCII without spaces (RFC 5424)")
        return value


class WebhookSinkSettings(_Sink, _Tls):
    """Batches POSTed as JSON to an HTTPS endpoint; any 2xx acknowledges the batch."""

    kind: Literal["webhook"]
    url: str
    # extra request headers (not secrets: those go in bearer_token_file)
    headers: dict[str, str] = Field(default_factory=dict)
    # a file holding a bearer token, sent as Authorization: Bearer …; read at start-up, never logged
    bearer_token_file: Path | None = None
    timeout_seconds: float = Field(default=10.0, gt=0, le=300)
    # attempts per batch before the delivery loop backs off (tenacity: exponential, jittered)
    max_attempts: int = Field(default=5, ge=1, le=20)
    backoff_initial_seconds: float = Field(default=0.5, gt=0, le=60)
    backoff_max_seconds: float = Field(default=30.0, gt=0, le=600)

    @field_validator("url")
    @classmethod
    def _https(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("must be an https:// URL")
        return value

    @field_validator("bearer_token_file")
    @classmethod
    def _token_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return _path(value, info)

    @field_validator("headers")
    @classmethod
    def _no_auth_header(cls, value: dict[str, str]) -> dict[str, str]:
        if any(k.lower() == "authorization" for k in value):
            raise ValueError("put the credential in bearer_token_file, not in a header written in the config")
        return value


class FileSinkSettings(_Sink):
    """JSON lines (one event per line) appended to a file, rotated by size."""

    kind: Literal["file"]
    path: Path
    # rotate before a write would take the file past this size: path → path.1 → … → path.<backups>
    max_bytes: int = Field(default=100 * 1024 * 1024, ge=4096)
    backups: int = Field(default=5, ge=0, le=1000)
    # fsync every batch before the cursor moves past it (off: faster, but a power loss may lose events
    # the cursor counts as delivered)
    fsync: bool = True

    @field_validator("path")
    @classmethod
    def _file_path(cls, value: Path, info: ValidationInfo) -> Path:
        if not str(value).strip():
            raise ValueError("path must not be empty")
        return resolve_config_path(value, info)


SinkSettings = Annotated[
    SyslogSinkSettings | WebhookSinkSettings | FileSinkSettings, Field(discriminator="kind")
]
