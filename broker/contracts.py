"""What the HTTP edge asks of the issuance use case, as plain data.

The lowest layer besides `broker.identity`: the issuer implements `IssuerPort`, the HTTP handlers call it, and
neither imports the other.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Protocol

from broker.identity import Caller


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


class IssuerPort(Protocol):
    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        """Issue a token or raise BrokerError (403 policy, 422 bad ttl, 502 upstream, 503 unavailable)."""
        ...

    def usable_roles(self, caller: Caller) -> list[RoleInfo]:
        """The roles this caller may request (never the others: no role enumeration)."""
        ...

    async def ready(self) -> list[str]:
        """Names of failing dependencies; an empty list means ready."""
        ...
