"""What policy answers: a Match (who may have which role where, and the rate limit that applies), then a Grant
(for how long, for which audiences) or a refusal."""

from __future__ import annotations

from dataclasses import dataclass

from broker.domain.errors import BrokerError
from broker.domain.identity import Caller
from broker.domain.roles import RateLimit, Role

from .compiled import CompiledGrant, CompiledRole


@dataclass(frozen=True)
class Grant:
    """A decision that allowed. For legacy-secret roles ttl_seconds and request_seconds are 0 (no expiry)."""

    role: Role
    namespace: str
    ttl_seconds: int
    # what to ask TokenRequest for: max(ttl_seconds, 600) for token-request roles
    request_seconds: int
    # () = the cluster's API audiences
    audiences: tuple[str, ...]
    grant_name: str
    # set when ttl_seconds < 600 on a revocable role: delete the bound Secret this many seconds after issuance
    revoke_after_seconds: int | None = None


@dataclass(frozen=True)
class RoleView:
    """A role as a caller may see it (GET /v1/roles). TTLs are this caller's effective ones; None for
    legacy-secret roles, whose tokens do not expire. `namespaces` are the role's globs (a grant may narrow them).
    """

    name: str
    description: str
    namespaces: tuple[str, ...]
    default_ttl: int | None
    max_ttl: int | None
    mode: str
    revocable: bool
    cluster: str


@dataclass(frozen=True)
class RateLimitChoice:
    """The token bucket a request draws from: `scope` is the grant whose own rate_limit applies, "" for the
    default (every grant without one, and requests no grant matches, share the caller's default bucket)."""

    scope: str
    limit: RateLimit


@dataclass(frozen=True)
class Match:
    """The first half of one evaluation, made before anything is asked of the cluster: the grants that give
    `caller` the role in the (resolved) namespace, the rate limit the request draws from whatever the answer,
    and the refusal when there is one already. Policy.grant finishes it."""

    caller: Caller
    role_name: str
    namespace: str | None
    rate_limit: RateLimitChoice
    refusal: BrokerError | None = None
    role: CompiledRole | None = None
    # the grants that allow it here, in config order
    grants: tuple[CompiledGrant, ...] = ()

    @property
    def needs_namespace_labels(self) -> bool:
        """Policy.grant needs the namespace's labels: the role has a namespace_selector, and nothing else has
        refused (so a caller who may not use the role costs the API server nothing)."""
        return self.refusal is None and self.role is not None and self.role.selector is not None
