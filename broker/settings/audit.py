"""The `[audit]` section of config.toml (pydantic: this is the edge; the store itself takes plain values)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationInfo, field_validator, model_validator

from .paths import resolve_config_path
from .sinks import SinkSettings

_SCHEMA_NAME = re.compile(r"[a-z_][a-z0-9_]{0,62}")


class AuditSettings(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")

    backend: Literal["sqlite", "postgres"] = "sqlite"
    # relative to the config file's directory, the default too
    sqlite_path: Path = Field(default=Path("token-broker-audit.sqlite3"), validate_default=True)
    # how long a writer waits for another process's lock on the SQLite file before giving up
    sqlite_busy_timeout_ms: int = Field(default=5000, ge=0, le=600_000)
    # libpq-style URL, e.g. postgresql://broker@db:5432/broker; repr=False: it may carry a password
    postgres_dsn: str | None = Field(default=None, repr=False)
    # a separate schema lets several brokers (or test runs) share one database
    postgres_schema: str = "public"
    pool_size: int = Field(default=10, ge=2, le=200)
    # days a record is kept; 0 keeps everything forever
    retention_days: int = Field(default=90, ge=0)
    # JSON-lines copy of every event for a SIEM; "-" is standard output
    jsonl_path: str | None = None
    group_commit_max_batch: int = Field(default=256, ge=1, le=10_000)
    # how long the writer waits for more records before committing a batch that is not full
    # 0 (default): no lingering. A batch is whatever queued while the previous commit ran, so a lone write
    # commits at once and concurrent writes still share commits (measured: 172 → 650 issuances/s for one
    # writer, batches as full under load as with 2 ms)
    group_commit_max_delay_ms: float = Field(default=0.0, ge=0, le=1000)
    # records waiting for the writer; beyond this a write fails fast with 503
    queue_size: int = Field(default=4096, ge=1)
    # the longest any caller waits for its write (queueing + commit) or a read
    write_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    connect_timeout_seconds: float = Field(default=5.0, gt=0, le=300)
    context_max_entries: int = Field(default=16, ge=0, le=256)
    context_max_key_length: int = Field(default=64, ge=1, le=1024)
    context_max_value_length: int = Field(default=256, ge=1, le=8192)
    # [[audit.sinks]]: streamed from the store with at-least-once delivery (broker/audit/sinks)
    sinks: tuple[SinkSettings, ...] = ()
    # how often the delivery loop looks for new events when it has caught up
    sink_poll_interval_seconds: float = Field(default=1.0, gt=0, le=60)
    # an ed25519 private key (PEM): the chain head is signed every checkpoint_interval_seconds
    checkpoint_key_file: Path | None = None
    checkpoint_interval_seconds: float = Field(default=300.0, ge=1, le=86_400)

    @field_validator("sqlite_path")
    @classmethod
    def _sqlite_path(cls, value: Path, info: ValidationInfo) -> Path:
        if not str(value).strip():
            raise ValueError("path must not be empty")
        return resolve_config_path(value, info)

    @field_validator("jsonl_path")
    @classmethod
    def _jsonl_path(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value is None or value == "-":
            return value
        if not value.strip():
            raise ValueError('path must not be empty (use "-" for standard output)')
        return str(resolve_config_path(Path(value), info))

    @field_validator("checkpoint_key_file")
    @classmethod
    def _key_path(cls, value: Path | None, info: ValidationInfo) -> Path | None:
        return None if value is None else resolve_config_path(value, info)

    @field_validator("sinks")
    @classmethod
    def _unique_sinks(cls, value: tuple[SinkSettings, ...]) -> tuple[SinkSettings, ...]:
        names = [sink.name for sink in value]
        if len(set(names)) != len(names):
            raise ValueError("sink names must be unique (each names its delivery cursor)")
        return value

    @field_validator("postgres_schema")
    @classmethod
    def _schema(cls, value: str) -> str:
        if _SCHEMA_NAME.fullmatch(value) is None:
            raise ValueError("must be a lower-case SQL identifier (a-z, 0-9, _; at most 63 characters)")
        return value

    @model_validator(mode="after")
    def _dsn_for_postgres(self) -> AuditSettings:
        if self.backend == "postgres" and not self.postgres_dsn:
            raise ValueError('backend "postgres" needs postgres_dsn')
        return self
