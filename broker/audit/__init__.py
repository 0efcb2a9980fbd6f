"""The audit trail: who obtained which token, when, from where, until when — and what became of it.

Two tables (see records.py): `issuances` holds one row per token with its current state
(pending → issued | failed | aborted; issued → revoked | expired) and `events` is the append-only log of every
decision. SQLite (embedded, WAL) and PostgreSQL (several replicas) sit behind one `AuditStore` protocol;
writes are group-committed; every write failure is a 503 so the issuer fails closed.

This package is a lower layer: it imports nothing from http, callers, policy, issuer, kube, app or cli.
"""

from .jsonl import JsonlSink, TeeStore, record_line
from .migrations import LATEST as SCHEMA_VERSION
from .migrations import SchemaTooNew
from .records import (
    EVENTS,
    LOG_EVENTS,
    AuditRecord,
    ContextLimits,
    Event,
    SecretBinding,
    record_to_dict,
)
from .sqlstore import SqlAuditStore
from .store import MAX_PAGE, AuditFilter, AuditStore, InvalidCursor, Page

__all__ = [
    "EVENTS",
    "LOG_EVENTS",
    "MAX_PAGE",
    "SCHEMA_VERSION",
    "AuditFilter",
    "AuditRecord",
    "AuditStore",
    "ContextLimits",
    "Event",
    "InvalidCursor",
    "JsonlSink",
    "Page",
    "SchemaTooNew",
    "SecretBinding",
    "SqlAuditStore",
    "TeeStore",
    "record_line",
    "record_to_dict",
]
