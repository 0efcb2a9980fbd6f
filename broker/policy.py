"""Who may have which role, in which namespace, for how long. Pure: no I/O, no HTTP, no Kubernetes client.

Status codes, chosen once and kept consistent:
- 403 answers "who and where": an unknown role and a role the caller holds no grant for are the SAME 403 (same
  title and detail, so roles cannot be enumerated); a namespace outside the role, outside every grant, or not
  matching the role's namespace_selector is a 403 too.
- 422 answers "what shape", and only once the caller is known to hold the role: namespace missing (role has more
  than one) or not a valid namespace name, ttl above the cap (refused, never shortened), ttl below the 10 minute
  TokenRequest minimum on a non-revocable role, ttl on a legacy-secret role, audiences the role does not offer.
Every BrokerError carries a `reason` for the audit trail that says which grant matched or why none did;
`detail` never lists roles or grants.

Bound claims (like Vault's JWT auth `bound_claims`): a grant with `claims` matches only OIDC callers whose
verified token carries every named claim with a value equal to one of the grant's values, where `*` matches any
run of characters and `?` one character (everything else is literal, also `/`). A list claim matches when any
element does; a boolean or number is compared in its JSON form (true → "true"); an object or null never matches.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from broker._kits.durations import format_duration
from broker._kits.labelselector import LabelSelector, parse_label_selector
from broker._kits.names import NamespaceMatcher, is_dns1123_label
from broker.domain.errors import BrokerError, ErrorKind, forbidden, unprocessable
from broker.domain.identity import Caller

from .config import TOKEN_REQUEST_MIN_SECONDS, BrokerConfig, GrantConfig, RateLimitConfig, RoleConfig

_ANY_ROLE = "*"
# the only callers that carry claims a grant may bind (Caller.method)
_CLAIMS_METHOD = "oidc"


@dataclass(frozen=True)
class Grant:
    """A decision that allowed. For legacy-secret roles ttl_seconds and request_seconds are 0 (no expiry)."""

    role: RoleConfig
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
    limit: RateLimitConfig


def _claim_regex(pattern: str) -> re.Pattern[str]:
    return re.compile(
        "".join(".*" if ch == "*" else "." if ch == "?" else re.escape(ch) for ch in pattern), re.S
    )


def _claim_texts(value: Any) -> list[str] | None:
    """A claim value in the form bound values are compared with; None when it cannot match anything."""
    if isinstance(value, str):
        return [value]
    if isinstance(value, bool | int | float):
        return [json.dumps(value)]
    if isinstance(value, list):
        texts: list[str] = []
        for item in value:
            if isinstance(item, str | bool | int | float):
                texts.extend(_claim_texts(item) or ())
        return texts
    return None


def _show_value(value: Any) -> str:
    text = json.dumps(value) if not isinstance(value, str) else repr(value)
    return text if len(text) <= 80 else text[:79] + "…"


@dataclass(frozen=True)
class _ClaimRule:
    claim: str
    patterns: tuple[str, ...]
    regexes: tuple[re.Pattern[str], ...]

    @classmethod
    def compile(cls, claim: str, patterns: tuple[str, ...]) -> _ClaimRule:
        return cls(claim, patterns, tuple(_claim_regex(p) for p in patterns))

    def problem(self, claims: Mapping[str, Any]) -> str | None:
        """Why the claims fail this rule, or None when they pass."""
        wanted = repr(self.patterns[0]) if len(self.patterns) == 1 else f"any of {list(self.patterns)!r}"
        if self.claim not in claims:
            return f"claim {self.claim} is missing (wanted {wanted})"
        value = claims[self.claim]
        texts = _claim_texts(value)
        if texts is None:
            return f"claim {self.claim} {_show_value(value)} is not a string, number, boolean or list of them"
        if any(r.fullmatch(t) for r in self.regexes for t in texts):
            return None
        return f"claim {self.claim} {_show_value(value)} does not match {wanted}"


@dataclass(frozen=True)
class _Role:
    config: RoleConfig
    namespaces: NamespaceMatcher
    selector: LabelSelector | None
    audiences: frozenset[str]


@dataclass(frozen=True)
class _Grant:
    index: int
    name: str
    config: GrantConfig
    namespaces: NamespaceMatcher
    claims: tuple[_ClaimRule, ...] = ()

    def claims_problem(self, caller: Caller) -> str | None:
        """Why this grant's bound claims exclude the caller, or None when they do not."""
        if not self.claims:
            return None
        if caller.method != _CLAIMS_METHOD:
            return (
                f"grant {self.name}: binds claims, which only OIDC callers carry (caller via {caller.method})"
            )
        for rule in self.claims:
            problem = rule.problem(caller.claims)
            if problem is not None:
                return f"grant {self.name}: {problem}"
        return None

    def cap(self, role: RoleConfig) -> int:
        cap = self.config.max_ttl
        return role.max_ttl if cap is None else min(role.max_ttl, cap)


def _quote(text: str) -> str:
    # Caller input echoed in a problem detail: bounded, escaped.
    return json.dumps(text if len(text) <= 64 else text[:64] + "…")


def _invalid(kind: ErrorKind, detail: str, reason: str) -> BrokerError:
    return unprocessable(detail, reason=reason, kind=kind)


def _who(caller: Caller) -> str:
    return f"user {caller.user!r} (groups {list(caller.groups)!r}, via {caller.method})"


class Policy:
    def __init__(
        self,
        roles: Sequence[RoleConfig],
        grants: Sequence[GrantConfig],
        rate_limit: RateLimitConfig | None = None,
    ) -> None:
        """rate_limit: the per-caller default for grants without one (None: RateLimitConfig's defaults)."""
        self._rate_limit = rate_limit or RateLimitConfig()
        # Matchers are shared between roles and grants with the same patterns (the default ["*"] above all).
        matchers: dict[tuple[str, ...], NamespaceMatcher] = {}

        def matcher(patterns: tuple[str, ...]) -> NamespaceMatcher:
            found = matchers.get(patterns)
            if found is None:
                found = matchers[patterns] = NamespaceMatcher(patterns)
            return found

        self._roles: dict[str, _Role] = {}
        for role in roles:
            if role.name in self._roles:
                raise ValueError(f"duplicate role {role.name!r}")
            selector = parse_label_selector(role.namespace_selector) if role.namespace_selector else None
            self._roles[role.name] = _Role(
                role,
                matcher(role.namespaces),
                selector,
                frozenset(role.default_audiences) | frozenset(role.allowed_audiences),
            )

        # (kind, principal) -> role name or "*" -> grants, in config order
        self._index: dict[tuple[str, str], dict[str, list[_Grant]]] = {}
        for i, grant in enumerate(grants):
            rules = tuple(_ClaimRule.compile(claim, values) for claim, values in grant.claims.items())
            compiled = _Grant(i, grant.name or f"grant-{i}", grant, matcher(grant.namespaces), rules)
            principals = [("user", u) for u in grant.users] + [("group", g) for g in grant.groups]
            for principal in dict.fromkeys(principals):
                by_role = self._index.setdefault(principal, {})
                for role_name in dict.fromkeys(grant.roles):
                    by_role.setdefault(role_name, []).append(compiled)

    @classmethod
    def from_config(cls, cfg: BrokerConfig) -> Policy:
        return cls(cfg.roles, cfg.grants, cfg.auth.rate_limit)

    # -- lookups ---------------------------------------------------------------------------------------------

    def role(self, name: str) -> RoleConfig | None:
        found = self._roles.get(name)
        return found.config if found else None

    def needs_namespace_labels(self, role: str) -> bool:
        found = self._roles.get(role)
        return found is not None and found.selector is not None

    def resolve_namespace(self, role: str, namespace: str | None) -> str | None:
        """The namespace `decide` would judge: the given one, else the role's only literal one, else None.

        For the issuer, which must fetch that namespace's labels before `decide` when
        `needs_namespace_labels(role)`. Says nothing about whether the caller may use the role.
        """
        if namespace:
            return namespace
        found = self._roles.get(role)
        return found.namespaces.only_literal() if found else None

    def _principals(self, caller: Caller) -> Iterable[tuple[str, str]]:
        yield ("user", caller.user)
        for group in caller.groups:
            yield ("group", group)

    def _grants_for(self, caller: Caller, role: str) -> list[_Grant]:
        """The grants naming the caller (user or group) for `role`, bound claims not yet checked."""
        found: dict[int, _Grant] = {}
        for principal in self._principals(caller):
            by_role = self._index.get(principal)
            if not by_role:
                continue
            for key in (role, _ANY_ROLE):
                for grant in by_role.get(key, ()):
                    found[grant.index] = grant
        return [found[i] for i in sorted(found)]

    def _claimed(self, caller: Caller, grants: Iterable[_Grant]) -> tuple[list[_Grant], list[str]]:
        """The grants whose bound claims the caller satisfies, and why each of the others does not."""
        kept: list[_Grant] = []
        refused: list[str] = []
        for grant in grants:
            problem = grant.claims_problem(caller)
            if problem is None:
                kept.append(grant)
            else:
                refused.append(problem)
        return kept, refused

    # -- the decision ----------------------------------------------------------------------------------------

    def decide(
        self,
        caller: Caller,
        role: str,
        namespace: str | None,
        ttl: int | None,
        audiences: Sequence[str] | None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> Grant:
        """Allow (a Grant) or raise BrokerError. Checks run in an order that reveals nothing about a role to a
        caller who may not use it: role and grant first, then namespace, then ttl and audiences."""
        # Identical for "no such role" and "not yours": only `reason` differs.
        not_allowed = f"not allowed to use role {_quote(role)}"
        compiled = self._roles.get(role)
        if compiled is None:
            raise forbidden(
                ErrorKind.UNKNOWN_ROLE, not_allowed, reason=f"unknown role {role!r} asked by {_who(caller)}"
            )
        candidates = self._grants_for(caller, role)
        if not candidates:
            raise forbidden(
                ErrorKind.NO_GRANT, not_allowed, reason=f"no grant gives role {role!r} to {_who(caller)}"
            )
        grants, refused = self._claimed(caller, candidates)
        if not grants:
            raise forbidden(
                ErrorKind.NO_GRANT,
                not_allowed,
                reason=f"no grant gives role {role!r} to {_who(caller)}: {'; '.join(refused)}",
            )
        cfg = compiled.config

        ns = self.resolve_namespace(role, namespace)
        if ns is None:
            raise _invalid(
                ErrorKind.INVALID_REQUEST,
                f"namespace is required for role {_quote(role)}",
                f"role {role!r} has namespaces {list(cfg.namespaces)!r}; none given by {_who(caller)}",
            )
        if not is_dns1123_label(ns):
            raise _invalid(
                ErrorKind.INVALID_REQUEST,
                f"namespace {_quote(ns)} is not a valid namespace name (a DNS-1123 label)",
                f"invalid namespace name {ns!r} from {_who(caller)}",
            )
        outside = f"not allowed to use role {_quote(role)} in namespace {_quote(ns)}"
        if not compiled.namespaces.matches(ns):
            raise forbidden(
                ErrorKind.NAMESPACE,
                outside,
                reason=f"namespace {ns!r} is outside role {role!r} namespaces {list(cfg.namespaces)!r}",
            )
        matching = [g for g in grants if g.namespaces.matches(ns)]
        if not matching:
            considered = ", ".join(f"{g.name} {list(g.config.namespaces)!r}" for g in grants)
            raise forbidden(
                ErrorKind.NAMESPACE,
                outside,
                reason=f"namespace {ns!r} is outside the namespaces of grants {considered} of {_who(caller)}",
            )
        if compiled.selector is not None:
            if namespace_labels is None:
                # A bug in the caller of decide, not a policy answer: fail closed, loudly.
                raise BrokerError(
                    ErrorKind.INTERNAL,
                    "the request could not be evaluated",
                    reason=f"role {role!r} has a namespace_selector but no namespace labels were supplied",
                )
            if not compiled.selector.matches(namespace_labels):
                raise forbidden(
                    ErrorKind.NAMESPACE_SELECTOR,
                    outside,
                    reason=(
                        f"namespace {ns!r} labels {dict(namespace_labels)!r} do not match "
                        f"namespace_selector {compiled.selector.text!r} of role {role!r}"
                    ),
                )

        # The most permissive TTL cap wins; max() keeps the first grant in config order on a tie.
        best = max(matching, key=lambda g: g.cap(cfg))
        if cfg.mode == "legacy-secret":
            return self._legacy(caller, compiled, best, ns, ttl, audiences)
        ttl_seconds, request_seconds, revoke_after = self._ttl(caller, compiled, best, ttl)
        return Grant(
            role=cfg,
            namespace=ns,
            ttl_seconds=ttl_seconds,
            request_seconds=request_seconds,
            audiences=self._audiences(caller, compiled, audiences),
            grant_name=best.name,
            revoke_after_seconds=revoke_after,
        )

    def _legacy(
        self,
        caller: Caller,
        compiled: _Role,
        grant: _Grant,
        ns: str,
        ttl: int | None,
        audiences: Sequence[str] | None,
    ) -> Grant:
        name = compiled.config.name
        if ttl is not None:
            raise _invalid(
                ErrorKind.TTL,
                f"role {_quote(name)} issues legacy Secret tokens, which do not expire: omit ttl",
                f"ttl {ttl} asked for legacy-secret role {name!r} by {_who(caller)} (grant {grant.name})",
            )
        if audiences:
            raise _invalid(
                ErrorKind.AUDIENCE,
                f"role {_quote(name)} issues legacy Secret tokens, which carry no audience: omit audiences",
                f"audiences {list(audiences)!r} asked for legacy-secret role {name!r} by {_who(caller)}",
            )
        return Grant(compiled.config, ns, 0, 0, (), grant.name, None)

    def _ttl(
        self, caller: Caller, compiled: _Role, grant: _Grant, ttl: int | None
    ) -> tuple[int, int, int | None]:
        cfg = compiled.config
        cap = grant.cap(cfg)
        capped_by = f"grant {grant.name}" if cap < cfg.max_ttl else f"role {cfg.name!r} max_ttl"
        if ttl is None:
            ttl = min(cfg.default_ttl, cap)
            asked = "the default ttl"
        else:
            asked = "ttl"
            if ttl <= 0:
                raise _invalid(ErrorKind.TTL, "ttl must be positive", f"ttl {ttl} from {_who(caller)}")
            if ttl > cap:
                raise _invalid(
                    ErrorKind.TTL,
                    f"ttl {format_duration(ttl)} exceeds the maximum of {format_duration(cap)} "
                    f"for role {_quote(cfg.name)}",
                    f"ttl {ttl}s above the {cap}s cap of {capped_by} (grant {grant.name}, {_who(caller)})",
                )
        if ttl >= TOKEN_REQUEST_MIN_SECONDS:
            return ttl, ttl, None
        if not cfg.revocable:
            raise _invalid(
                ErrorKind.TTL,
                f"{asked} {format_duration(ttl)} is below the 10m minimum of the Kubernetes TokenRequest API "
                f"(role {_quote(cfg.name)} is not revocable)",
                f"ttl {ttl}s below 600s on non-revocable role {cfg.name!r} (grant {grant.name}, {_who(caller)})",
            )
        # Kubernetes refuses expirationSeconds < 600 (422, never clamped): ask for 600, revoke at the ttl.
        return ttl, TOKEN_REQUEST_MIN_SECONDS, ttl

    def _audiences(self, caller: Caller, compiled: _Role, audiences: Sequence[str] | None) -> tuple[str, ...]:
        cfg = compiled.config
        if not audiences:
            return cfg.default_audiences
        asked = tuple(dict.fromkeys(audiences))
        for audience in asked:
            if audience not in compiled.audiences:
                raise _invalid(
                    ErrorKind.AUDIENCE,
                    f"audience {_quote(audience)} is not allowed for role {_quote(cfg.name)}",
                    f"audience {audience!r} outside {sorted(compiled.audiences)!r} of role {cfg.name!r} "
                    f"({_who(caller)})",
                )
        return asked

    # -- listing ---------------------------------------------------------------------------------------------

    def usable_roles(self, caller: Caller) -> list[RoleView]:
        """The roles this caller holds a grant for, by name, with the caller's effective TTL limits."""
        names: set[str] = set()
        everything = False
        for principal in self._principals(caller):
            by_role = self._index.get(principal)
            if by_role:
                everything = everything or _ANY_ROLE in by_role
                names.update(n for n in by_role if n != _ANY_ROLE)
        candidates = self._roles.keys() if everything else names
        views: list[RoleView] = []
        for name in sorted(candidates):
            compiled = self._roles.get(name)
            if compiled is None:
                continue
            cfg = compiled.config
            grants, _ = self._claimed(caller, self._grants_for(caller, name))
            if not grants:
                continue
            legacy = cfg.mode == "legacy-secret"
            cap = max(g.cap(cfg) for g in grants)
            views.append(
                RoleView(
                    name=cfg.name,
                    description=cfg.description,
                    namespaces=cfg.namespaces,
                    default_ttl=None if legacy else min(cfg.default_ttl, cap),
                    max_ttl=None if legacy else cap,
                    mode=cfg.mode,
                    revocable=cfg.revocable,
                    cluster=cfg.cluster or "",
                )
            )
        return views

    # -- rate limits -----------------------------------------------------------------------------------------

    def rate_limit_for(self, caller: Caller, role: str, namespace: str | None) -> RateLimitChoice:
        """The bucket a token request draws from: that of the grants that would allow it (the most generous
        limit when several do), else the default. Ignores ttl, audiences and namespace labels: they cannot
        change which grants apply, only whether the request then succeeds."""
        grants: list[_Grant] = []
        compiled = self._roles.get(role)
        ns = self.resolve_namespace(role, namespace)
        if compiled is not None and (ns is None or compiled.namespaces.matches(ns)):
            grants, _ = self._claimed(caller, self._grants_for(caller, role))
            if ns is not None:
                grants = [g for g in grants if g.namespaces.matches(ns)]
        if not grants:
            return RateLimitChoice("", self._rate_limit)

        def limit(grant: _Grant) -> RateLimitConfig:
            return grant.config.rate_limit or self._rate_limit

        best = max(grants, key=lambda g: (limit(g).per_minute, limit(g).burst))
        return RateLimitChoice(best.name if best.config.rate_limit is not None else "", limit(best))
