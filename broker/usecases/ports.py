"""What the HTTP edge (and anything else above the use cases) may ask of them: one protocol per use case, and
the plain data that goes in and out. Nothing of the audit store's or the Kubernetes client's own types leaks
through here: records, filters, pages and a token's audited requests are the domain's.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from broker.domain.activity import TokenActivity
from broker.domain.identity import Caller
from broker.domain.records import AuditFilter, AuditRecord, Page


@dataclass(frozen=True)
class IssueRequest:
    """One validated request for a token, as the caller asked for it (policy has not judged it yet)."""

    role: str
    namespace: str | None
    # None: the role's default TTL
    ttl_seconds: int | None
    # None: the role's (or the API server's) default audiences
    audiences: tuple[str, ...] | None
    # free-form labels the caller attaches for the audit trail (e.g. a CI job URL), already bounded
    context: Mapping[str, str]
    source_address: str
    user_agent: str
    # the HTTP request id, so an audit record can be matched with the access log
    request_id: str = ""


@dataclass(frozen=True)
class IssuedToken:
    """A token that has been verified and whose audit record is complete: safe to hand over."""

    # the raw JWT: kept out of repr so an accidental log line or traceback does not carry it
    token: str = field(repr=False)
    # the broker's id of the issuance (audit record, revocation handle)
    token_id: str
    # the JWT's jti, which the API server's audit log shows as credential-id JTI=<uuid>
    jti: str
    issued_at: datetime
    # None: a legacy Secret token, which carries no exp and lives until its Secret is deleted
    expires_at: datetime | None
    namespace: str
    service_account: str
    audiences: tuple[str, ...]
    role: str
    # the configured cluster name, and how to reach its API server (for a rendered kubeconfig)
    cluster: str
    server_url: str
    ca_pem: bytes | None = field(repr=False)
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class RoleInfo:
    """A role as a caller who may use it sees it."""

    name: str
    description: str
    cluster: str
    namespaces: tuple[str, ...]
    default_ttl: int
    max_ttl: int
    # how the token is obtained, e.g. "token-request" or "legacy-secret"
    mode: str
    # whether the broker binds the token to a Secret it can delete before expiry
    revocable: bool
    # how to reach the role's cluster (for `token-broker kubeconfig`): public facts, no secret
    cluster_server: str = ""
    cluster_ca_pem: bytes | None = field(default=None, repr=False)


class IssuancePort(Protocol):
    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        """Issue a token or raise BrokerError (403 policy, 422 bad ttl, 502 upstream, 503 unavailable)."""
        ...

    def usable_roles(self, caller: Caller) -> list[RoleInfo]:
        """The roles this caller may request (never the others: no role enumeration)."""
        ...

    async def ready(self) -> list[str]:
        """Names of failing dependencies; an empty list means ready."""
        ...


# -- the operators' side of the audit trail ----------------------------------------------------------------------


@dataclass(frozen=True)
class RecordQuery:
    """One listing request (GET /v1/tokens, GET /v1/audit) as asked; the caller's visibility applies on top."""

    filter: AuditFilter = field(default_factory=AuditFilter)
    cursor: str | None = None
    # rows per page, 1..broker.audit.MAX_PAGE
    limit: int = 50
    # a JWT id, as a Kubernetes audit event names it (credential-id "JTI=<jti>"): the issuance with that jti
    # (tokens), or that issuance's history (events)
    jti: str | None = None


@dataclass(frozen=True)
class Introspection:
    """The answer to "what is this token?". `record` None: nothing the caller may learn (`{"active": false}`)."""

    active: bool
    record: AuditRecord | None = None
    # the verified claims (None when the signature did not verify)
    claims: Mapping[str, Any] | None = field(default=None, repr=False)
    # why not active: "expired", "revoked", "the signature does not verify", ...
    reason: str = ""


class RecordsPort(Protocol):
    """Listing issued tokens and the event log. Records the caller may not see are absent."""

    async def list_tokens(self, caller: Caller, query: RecordQuery) -> Page:
        """One page of issuances, newest first. BrokerError 400 for a bad cursor, 503 store unavailable."""
        ...

    async def list_events(self, caller: Caller, query: RecordQuery) -> Page:
        """One page of the event log (issued, denied, failed, aborted, revoked, expired), newest first."""
        ...

    def export_tokens(
        self, caller: Caller, query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        """Every matching issuance from `query.cursor` on, at most `max_records` (query.limit is ignored)."""
        ...

    def export_events(
        self, caller: Caller, query: RecordQuery, max_records: int
    ) -> AsyncIterator[AuditRecord]:
        """Every matching event from `query.cursor` on, at most `max_records`."""
        ...


class RevocationPort(Protocol):
    async def revoke(self, caller: Caller, token_id: str, reason: str = "") -> AuditRecord | None:
        """The `revoked` event, or None when the token was already dead. BrokerError 404 (unknown or not
        the caller's), 409 (not revocable, not issued), 502/503 (the API server did not delete the Secret)."""
        ...


class IntrospectionPort(Protocol):
    async def introspect(self, caller: Caller, token: str) -> Introspection:
        """RFC 7662-like; never raises for a token that is not ours (503 only when keys are unreachable)."""
        ...


@dataclass(frozen=True)
class Correlation:
    """A kube-apiserver audit log joined to the issuance records a caller may see."""

    tokens: tuple[TokenActivity, ...]
    # lines read, lines that were not JSON events, distinct tokens beyond the bound (their requests not kept)
    lines: int
    unparsable_lines: int
    tokens_dropped: int


class CorrelationPort(Protocol):
    async def correlate(
        self, caller: Caller, chunks: AsyncIterator[bytes], *, jti: str | None = None
    ) -> Correlation:
        """Read the audit log (bytes, JSON lines) and join; BrokerError 503 when the store cannot be read."""
        ...
