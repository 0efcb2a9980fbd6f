"""[[grants]]: who may use which roles, where, how long and how often."""

from __future__ import annotations

from types import MappingProxyType
from typing import Annotated

from pydantic import Field, StrictInt, model_validator

from .fields import (
    BoundClaims,
    Duration,
    NamespacePattern,
    PositiveFloat,
    Principal,
    RoleRef,
    Section,
    raise_problems,
)


class RateLimitConfig(Section):
    """A token bucket per caller: `burst` requests at once, refilled at `per_minute` (fractions allowed)."""

    per_minute: PositiveFloat = 600.0
    burst: Annotated[StrictInt, Field(ge=1)] = 100


class GrantConfig(Section):
    # None: BrokerConfig names it "grant-<index>" (its index in [[grants]], counted from 0 like key paths)
    name: Principal | None = None
    users: tuple[Principal, ...] = ()
    groups: tuple[Principal, ...] = ()
    # role names, or "*" for every role
    roles: Annotated[tuple[RoleRef, ...], Field(min_length=1)]
    namespaces: Annotated[tuple[NamespacePattern, ...], Field(min_length=1)] = ("*",)
    # A cap on the ttl below the role's max_ttl (a higher value has no effect)
    max_ttl: Duration | None = None
    # OIDC callers only: every named claim must equal (or glob-match, `*` and `?`) one of the values
    claims: BoundClaims = Field(default_factory=lambda: MappingProxyType({}))
    # None: [auth.rate_limit]
    rate_limit: RateLimitConfig | None = None

    @model_validator(mode="after")
    def _someone(self) -> GrantConfig:
        if not self.users and not self.groups:
            raise_problems([("users", "a grant needs at least one entry in users or groups")])
        return self
