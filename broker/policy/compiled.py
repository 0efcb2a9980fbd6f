"""Roles and grants compiled for fast matching, and the phrases every refusal shares."""

from __future__ import annotations

import json
from dataclasses import dataclass

from broker._kits.labelselector import LabelSelector
from broker._kits.names import NamespaceMatcher
from broker.domain.errors import BrokerError, ErrorKind, unprocessable
from broker.domain.identity import Caller
from broker.domain.roles import GrantRule, Role

from .claims import ClaimRule

# the only callers that carry claims a grant may bind (Caller.method)
CLAIMS_METHOD = "oidc"


@dataclass(frozen=True)
class CompiledRole:
    role: Role
    namespaces: NamespaceMatcher
    selector: LabelSelector | None
    audiences: frozenset[str]


@dataclass(frozen=True)
class CompiledGrant:
    index: int
    rule: GrantRule
    namespaces: NamespaceMatcher
    claims: tuple[ClaimRule, ...] = ()

    @property
    def name(self) -> str:
        return self.rule.name

    def claims_problem(self, caller: Caller) -> str | None:
        """Why this grant's bound claims exclude the caller, or None when they do not."""
        if not self.claims:
            return None
        if caller.method != CLAIMS_METHOD:
            return (
                f"grant {self.name}: binds claims, which only OIDC callers carry (caller via {caller.method})"
            )
        for rule in self.claims:
            problem = rule.problem(caller.claims)
            if problem is not None:
                return f"grant {self.name}: {problem}"
        return None

    def cap(self, role: Role) -> int:
        cap = self.rule.max_ttl
        return role.max_ttl if cap is None else min(role.max_ttl, cap)


def quote(text: str) -> str:
    # Caller input echoed in a problem detail: bounded, escaped.
    return json.dumps(text if len(text) <= 64 else text[:64] + "…")


def invalid(kind: ErrorKind, detail: str, reason: str) -> BrokerError:
    return unprocessable(detail, reason=reason, kind=kind)


def who(caller: Caller) -> str:
    return f"user {caller.user!r} (groups {list(caller.groups)!r}, via {caller.method})"
