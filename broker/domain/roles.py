"""Roles and grants as the broker speaks of them: what a token is for, and who may have one where.

Built by the app from config.toml's [[roles]] and [[grants]] (already validated there), so nothing here checks
them again.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

Mode = Literal["token-request", "legacy-secret"]


@dataclass(frozen=True)
class Role:
    """A service account in some namespaces of one cluster, for how long, and how its tokens are made."""

    name: str
    cluster: str
    service_account: str
    namespaces: tuple[str, ...]
    # a label selector the namespace must match, as written (None: any namespace of `namespaces`)
    namespace_selector: str | None = None
    # seconds; a legacy-secret role ignores both (its tokens do not expire)
    default_ttl: int = 3600
    max_ttl: int = 3600
    # () = the cluster's API audiences
    default_audiences: tuple[str, ...] = ()
    # audiences a caller may ask for besides default_audiences
    allowed_audiences: tuple[str, ...] = ()
    mode: Mode = "token-request"
    # tokens bound to a Secret the broker deletes to revoke them (and to end tokens shorter than 10 minutes)
    revocable: bool = False
    create_service_account: bool = True
    # an account the broker created is deleted once the last token issued for it has ended
    ephemeral_service_account: bool = False
    service_account_labels: Mapping[str, str] = field(default_factory=dict)
    service_account_annotations: Mapping[str, str] = field(default_factory=dict)
    description: str = ""

    @property
    def legacy(self) -> bool:
        return self.mode == "legacy-secret"

    @property
    def needs_floor(self) -> bool:
        """Its tokens live at least the TokenRequest minimum (domain.floors): a token-request role that cannot revoke early."""
        return not self.legacy and not self.revocable


@dataclass(frozen=True)
class RateLimit:
    """A token bucket per caller: `burst` requests at once, refilled at `per_minute`."""

    per_minute: float = 600.0
    burst: int = 100


@dataclass(frozen=True)
class GrantRule:
    """Users and groups who may use some roles (or "*" for all) in some namespaces."""

    name: str
    roles: tuple[str, ...]
    users: tuple[str, ...] = ()
    groups: tuple[str, ...] = ()
    namespaces: tuple[str, ...] = ("*",)
    # a cap below the role's max_ttl (None: the role's)
    max_ttl: int | None = None
    # OIDC callers only: each named claim must match one of the patterns (`*`, `?` globs)
    claims: Mapping[str, tuple[str, ...]] = field(default_factory=dict)
    # None: the broker's default limit per caller
    rate_limit: RateLimit | None = None
