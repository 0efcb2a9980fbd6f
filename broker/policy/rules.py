"""The Policy: roles and grants indexed by who they name, evaluated once per request.

Status codes, chosen once and kept consistent:
- 403 answers "who and where": an unknown role and a role the caller holds no grant for are the SAME 403 (same
  title and detail, so roles cannot be enumerated); a namespace outside the role, outside every grant, or not
  matching the role's namespace_selector is a 403 too.
- 422 answers "what shape", and only once the caller is known to hold the role: namespace missing (role has more
  than one) or not a valid namespace name, ttl above the cap (refused, never shortened), ttl below the 10 minute
  TokenRequest minimum on a non-revocable role, ttl on a legacy-secret role, audiences the role does not offer.
Every BrokerError carries a `reason` for the audit trail that says which grant matched or why none did;
`detail` never lists roles or grants.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from broker._kits.labelselector import parse_label_selector
from broker._kits.names import NamespaceMatcher, is_dns1123_label
from broker.domain.errors import BrokerError, ErrorKind, forbidden
from broker.domain.identity import Caller
from broker.domain.roles import GrantRule, RateLimit, Role

from .claims import ClaimRule
from .compiled import CompiledGrant, CompiledRole, invalid, quote, who
from .decisions import Grant, Match, RateLimitChoice, RoleView
from .lifetimes import audiences_for, lifetime, refuse_legacy_options

_ANY_ROLE = "*"


class Policy:
    def __init__(
        self, roles: Sequence[Role], grants: Sequence[GrantRule], rate_limit: RateLimit | None = None
    ) -> None:
        """rate_limit: the per-caller default for grants without one (None: RateLimit's defaults)."""
        self._rate_limit = rate_limit or RateLimit()
        # Matchers are shared between roles and grants with the same patterns (the default ["*"] above all).
        self._matchers: dict[tuple[str, ...], NamespaceMatcher] = {}
        self._roles: dict[str, CompiledRole] = {}
        for role in roles:
            if role.name in self._roles:
                raise ValueError(f"duplicate role {role.name!r}")
            self._roles[role.name] = self._compile_role(role)
        # (kind, principal) -> role name or "*" -> grants, in config order
        self._index: dict[tuple[str, str], dict[str, list[CompiledGrant]]] = {}
        for i, grant in enumerate(grants):
            self._add_grant(i, grant)

    def _matcher(self, patterns: tuple[str, ...]) -> NamespaceMatcher:
        found = self._matchers.get(patterns)
        if found is None:
            found = self._matchers[patterns] = NamespaceMatcher(patterns)
        return found

    def _compile_role(self, role: Role) -> CompiledRole:
        selector = parse_label_selector(role.namespace_selector) if role.namespace_selector else None
        audiences = frozenset(role.default_audiences) | frozenset(role.allowed_audiences)
        return CompiledRole(role, self._matcher(role.namespaces), selector, audiences)

    def _add_grant(self, index: int, grant: GrantRule) -> None:
        rules = tuple(ClaimRule.compile(claim, values) for claim, values in grant.claims.items())
        compiled = CompiledGrant(index, grant, self._matcher(grant.namespaces), rules)
        principals = [("user", u) for u in grant.users] + [("group", g) for g in grant.groups]
        for principal in dict.fromkeys(principals):
            by_role = self._index.setdefault(principal, {})
            for role_name in dict.fromkeys(grant.roles):
                by_role.setdefault(role_name, []).append(compiled)

    # -- lookups ---------------------------------------------------------------------------------------------

    @property
    def roles(self) -> Mapping[str, Role]:
        return {name: compiled.role for name, compiled in self._roles.items()}

    def role(self, name: str) -> Role | None:
        found = self._roles.get(name)
        return found.role if found else None

    def resolve_namespace(self, role: str, namespace: str | None) -> str | None:
        """The namespace a request is judged in: the given one, else the role's only literal one, else None."""
        if namespace:
            return namespace
        found = self._roles.get(role)
        return found.namespaces.only_literal() if found else None

    def _principals(self, caller: Caller) -> Iterable[tuple[str, str]]:
        yield ("user", caller.user)
        for group in caller.groups:
            yield ("group", group)

    def _grants_for(self, caller: Caller, role: str) -> list[CompiledGrant]:
        """The grants naming the caller (user or group) for `role`, bound claims not yet checked."""
        found: dict[int, CompiledGrant] = {}
        for principal in self._principals(caller):
            by_role = self._index.get(principal)
            if not by_role:
                continue
            for key in (role, _ANY_ROLE):
                for grant in by_role.get(key, ()):
                    found[grant.index] = grant
        return [found[i] for i in sorted(found)]

    def _claimed(
        self, caller: Caller, grants: Iterable[CompiledGrant]
    ) -> tuple[list[CompiledGrant], list[str]]:
        """The grants whose bound claims the caller satisfies, and why each of the others does not."""
        kept: list[CompiledGrant] = []
        refused: list[str] = []
        for grant in grants:
            problem = grant.claims_problem(caller)
            if problem is None:
                kept.append(grant)
            else:
                refused.append(problem)
        return kept, refused

    # -- one evaluation: match, then grant ---------------------------------------------------------------------

    def match(self, caller: Caller, role: str, namespace: str | None) -> Match:
        """Which grants give `caller` the role in the namespace, checked in an order that reveals nothing about a
        role to a caller who may not use it: role and grant first, then namespace. Never raises."""
        ns = self.resolve_namespace(role, namespace)
        compiled = self._roles.get(role)
        if compiled is None:
            unknown = forbidden(
                ErrorKind.UNKNOWN_ROLE,
                _not_allowed(role),
                reason=f"unknown role {role!r} asked by {who(caller)}",
            )
            return Match(caller, role, ns, self._bucket(()), unknown)
        candidates = self._grants_for(caller, role)
        claimed, refused = self._claimed(caller, candidates)
        in_role = ns is None or compiled.namespaces.matches(ns)
        here = [g for g in claimed if ns is None or g.namespaces.matches(ns)] if in_role else []
        refusal: BrokerError | None
        if not claimed:
            refusal = self._grant_refusal(caller, role, candidates, refused)
        else:
            refusal = self._namespace_refusal(caller, compiled, claimed, ns, here)
        return Match(caller, role, ns, self._bucket(here), refusal, compiled, tuple(here))

    def _grant_refusal(
        self, caller: Caller, role: str, candidates: list[CompiledGrant], refused: list[str]
    ) -> BrokerError:
        # Identical for "no such role" and "not yours": only `reason` differs.
        reason = f"no grant gives role {role!r} to {who(caller)}"
        if candidates:
            reason += f": {'; '.join(refused)}"
        return forbidden(ErrorKind.NO_GRANT, _not_allowed(role), reason=reason)

    def _namespace_refusal(
        self,
        caller: Caller,
        compiled: CompiledRole,
        claimed: list[CompiledGrant],
        ns: str | None,
        here: list[CompiledGrant],
    ) -> BrokerError | None:
        role = compiled.role
        if ns is None:
            return invalid(
                ErrorKind.INVALID_REQUEST,
                f"namespace is required for role {quote(role.name)}",
                f"role {role.name!r} has namespaces {list(role.namespaces)!r}; none given by {who(caller)}",
            )
        if not is_dns1123_label(ns):
            return invalid(
                ErrorKind.INVALID_REQUEST,
                f"namespace {quote(ns)} is not a valid namespace name (a DNS-1123 label)",
                f"invalid namespace name {ns!r} from {who(caller)}",
            )
        if not compiled.namespaces.matches(ns):
            return forbidden(
                ErrorKind.NAMESPACE,
                _outside(role.name, ns),
                reason=f"namespace {ns!r} is outside role {role.name!r} namespaces {list(role.namespaces)!r}",
            )
        if not here:
            considered = ", ".join(f"{g.name} {list(g.rule.namespaces)!r}" for g in claimed)
            return forbidden(
                ErrorKind.NAMESPACE,
                _outside(role.name, ns),
                reason=f"namespace {ns!r} is outside the namespaces of grants {considered} of {who(caller)}",
            )
        return None

    def grant(
        self,
        match: Match,
        ttl: int | None,
        audiences: Sequence[str] | None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> Grant:
        """Finish the evaluation: a Grant, or raise BrokerError (the match's refusal, the namespace selector,
        then ttl and audiences). `namespace_labels` are required when match.needs_namespace_labels."""
        if match.refusal is not None:
            raise match.refusal
        compiled, ns, caller = match.role, match.namespace, match.caller
        assert compiled is not None and ns is not None and match.grants
        self._check_selector(compiled, ns, namespace_labels)
        role = compiled.role
        # The most permissive TTL cap wins; max() keeps the first grant in config order on a tie.
        best = max(match.grants, key=lambda g: g.cap(role))
        if role.legacy:
            refuse_legacy_options(caller, compiled, best, ttl, audiences)
            return Grant(role, ns, 0, 0, (), best.name, None)
        ttl_seconds, request_seconds, revoke_after = lifetime(caller, compiled, best, ttl)
        return Grant(
            role=role,
            namespace=ns,
            ttl_seconds=ttl_seconds,
            request_seconds=request_seconds,
            audiences=audiences_for(caller, compiled, audiences),
            grant_name=best.name,
            revoke_after_seconds=revoke_after,
        )

    def _check_selector(self, compiled: CompiledRole, ns: str, labels: Mapping[str, str] | None) -> None:
        if compiled.selector is None:
            return
        role = compiled.role.name
        if labels is None:
            # A bug in the caller of grant(), not a policy answer: fail closed, loudly.
            raise BrokerError(
                ErrorKind.INTERNAL,
                "the request could not be evaluated",
                reason=f"role {role!r} has a namespace_selector but no namespace labels were supplied",
            )
        if not compiled.selector.matches(labels):
            raise forbidden(
                ErrorKind.NAMESPACE_SELECTOR,
                _outside(role, ns),
                reason=(
                    f"namespace {ns!r} labels {dict(labels)!r} do not match "
                    f"namespace_selector {compiled.selector.text!r} of role {role!r}"
                ),
            )

    def decide(
        self,
        caller: Caller,
        role: str,
        namespace: str | None,
        ttl: int | None,
        audiences: Sequence[str] | None,
        namespace_labels: Mapping[str, str] | None = None,
    ) -> Grant:
        """match() and grant() in one go, for a caller that has the namespace labels at hand."""
        return self.grant(self.match(caller, role, namespace), ttl, audiences, namespace_labels)

    # -- rate limits -----------------------------------------------------------------------------------------

    def _bucket(self, grants: Sequence[CompiledGrant]) -> RateLimitChoice:
        """The bucket of the grants that would allow a request (the most generous limit when several do), else
        the default. ttl, audiences and namespace labels cannot change which grants apply."""
        if not grants:
            return RateLimitChoice("", self._rate_limit)

        def limit(grant: CompiledGrant) -> RateLimit:
            return grant.rule.rate_limit or self._rate_limit

        best = max(grants, key=lambda g: (limit(g).per_minute, limit(g).burst))
        return RateLimitChoice(best.name if best.rule.rate_limit is not None else "", limit(best))

    def rate_limit_for(self, caller: Caller, role: str, namespace: str | None) -> RateLimitChoice:
        return self.match(caller, role, namespace).rate_limit

    # -- listing ---------------------------------------------------------------------------------------------

    def _named_roles(self, caller: Caller) -> Iterable[str]:
        names: set[str] = set()
        everything = False
        for principal in self._principals(caller):
            by_role = self._index.get(principal)
            if by_role:
                everything = everything or _ANY_ROLE in by_role
                names.update(n for n in by_role if n != _ANY_ROLE)
        return sorted(self._roles.keys() if everything else names)

    def usable_roles(self, caller: Caller) -> list[RoleView]:
        """The roles this caller holds a grant for, by name, with the caller's effective TTL limits."""
        views: list[RoleView] = []
        for name in self._named_roles(caller):
            compiled = self._roles.get(name)
            grants = self._claimed(caller, self._grants_for(caller, name))[0] if compiled else []
            if compiled is None or not grants:
                continue
            role = compiled.role
            cap = max(g.cap(role) for g in grants)
            views.append(
                RoleView(
                    name=role.name,
                    description=role.description,
                    namespaces=role.namespaces,
                    default_ttl=None if role.legacy else min(role.default_ttl, cap),
                    max_ttl=None if role.legacy else cap,
                    mode=role.mode,
                    revocable=role.revocable,
                    cluster=role.cluster,
                )
            )
        return views


def _not_allowed(role: str) -> str:
    return f"not allowed to use role {quote(role)}"


def _outside(role: str, ns: str) -> str:
    return f"not allowed to use role {quote(role)} in namespace {quote(ns)}"
