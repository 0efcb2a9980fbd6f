"""The RBAC authorizer (plugin/pkg/auth/authorizer/rbac): rules from the ClusterRoleBindings of the user,
plus, for a namespaced request, the RoleBindings of that namespace. A `system:masters` member is allowed
everything (the superuser bypass kube-apiserver installs in front of RBAC)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .context import SimContext, UserInfo
from .kinds import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES
from .state import Obj, Store

SUPERUSER_GROUP = "system:masters"


@dataclass(frozen=True)
class Attributes:
    """authorizer.Attributes."""

    user: UserInfo
    verb: str
    is_resource_request: bool
    path: str = ""
    namespace: str = ""
    api_group: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""


@dataclass(frozen=True)
class Decision:
    allowed: bool
    reason: str = ""


def _rules(role: Obj | None) -> list[dict[str, Any]]:
    if role is None:
        return []
    return [r for r in role.get("rules") or [] if isinstance(r, dict)]


def _has(values: Any, wanted: str) -> bool:
    return isinstance(values, list) and ("*" in values or wanted in values)


def rule_allows(rule: dict[str, Any], attrs: Attributes) -> bool:
    """rbac/v1 helpers: VerbMatches, APIGroupMatches, ResourceMatches, ResourceNameMatches, NonResourceURLMatches."""
    if not _has(rule.get("verbs"), attrs.verb):
        return False
    if attrs.is_resource_request:
        if not _has(rule.get("apiGroups"), attrs.api_group):
            return False
        combined = f"{attrs.resource}/{attrs.subresource}" if attrs.subresource else attrs.resource
        resources = rule.get("resources") or []
        if not (
            "*" in resources
            or combined in resources
            or (attrs.subresource and f"*/{attrs.subresource}" in resources)
        ):
            return False
        names = rule.get("resourceNames") or []
        return not names or attrs.name in names
    for url in rule.get("nonResourceURLs") or []:
        if url == "*" or url == attrs.path or (url.endswith("*") and attrs.path.startswith(url[:-1])):
            return True
    return False


def subject_matches(subject: dict[str, Any], user: UserInfo, binding_namespace: str) -> bool:
    kind = subject.get("kind")
    name = subject.get("name")
    if kind == "User":
        return bool(name) and name == user.username
    if kind == "Group":
        return name in user.groups
    if kind == "ServiceAccount":
        namespace = subject.get("namespace") or binding_namespace
        return user.username == f"system:serviceaccount:{namespace}:{name}"
    return False


def _describe(subject: dict[str, Any]) -> str:
    kind = subject.get("kind", "")
    if kind == "ServiceAccount":
        return f'ServiceAccount "{subject.get("name")}/{subject.get("namespace", "")}"'
    return f'{kind} "{subject.get("name")}"'


@dataclass(frozen=True)
class Bound:
    """One binding that applies to a user: its description (for the authorizer's reason), the role it refers to
    (None when that role does not exist), and the subject that matched."""

    description: str
    ref: dict[str, Any]
    role: Obj | None
    subject: dict[str, Any]


def _bound_roles(store: Store, user: UserInfo, namespace: str) -> Iterator[Bound]:
    """Every binding that applies (DefaultRuleResolver.VisitRulesFor): cluster-wide first, then the namespace's."""
    for binding in store.list(CLUSTERROLEBINDINGS):
        subject = _first_matching(binding, user, "")
        if subject is not None:
            ref = binding.get("roleRef") or {}
            yield Bound(
                f'ClusterRoleBinding "{binding["metadata"]["name"]}" of ClusterRole "{ref.get("name")}"',
                ref,
                referenced_role(store, ref, ""),
                subject,
            )
    if not namespace:
        return
    for binding in store.list(ROLEBINDINGS, namespace):
        subject = _first_matching(binding, user, namespace)
        if subject is not None:
            ref = binding.get("roleRef") or {}
            yield Bound(
                f'RoleBinding "{binding["metadata"]["name"]}/{namespace}" of {ref.get("kind")} "{ref.get("name")}"',
                ref,
                referenced_role(store, ref, namespace),
                subject,
            )


def _first_matching(binding: Obj, user: UserInfo, namespace: str) -> dict[str, Any] | None:
    for subject in binding.get("subjects") or []:
        if isinstance(subject, dict) and subject_matches(subject, user, namespace):
            return subject
    return None


def referenced_role(store: Store, ref: dict[str, Any], namespace: str) -> Obj | None:
    """GetRoleReferenceRules' lookup: a Role in the binding's namespace or a ClusterRole; None when missing."""
    if ref.get("kind") == "ClusterRole":
        return store.try_get(CLUSTERROLES, None, ref.get("name", ""))
    if ref.get("kind") == "Role" and namespace:
        return store.try_get(ROLES, namespace, ref.get("name", ""))
    return None


def authorize(store: Store, attrs: Attributes) -> Decision:
    if SUPERUSER_GROUP in attrs.user.groups:
        return Decision(True)
    # only resource requests are namespaced; RoleBindings never grant non-resource URLs
    namespace = attrs.namespace if attrs.is_resource_request else ""
    for bound in _bound_roles(store, attrs.user, namespace):
        if any(rule_allows(rule, attrs) for rule in _rules(bound.role)):
            return Decision(True, f"RBAC: allowed by {bound.description} to {_describe(bound.subject)}")
    return Decision(False)


@dataclass(frozen=True)
class Resolution:
    """RulesFor: every rule that applies to a user in a namespace, and the role references that did not resolve
    (kind, name) — the resolver's errors, which its callers word differently."""

    rules: list[dict[str, Any]]
    missing: list[tuple[str, str]]


def rules_for(store: Store, user: UserInfo, namespace: str) -> Resolution:
    """The user's rules from the bindings alone (system:masters holds cluster-admin through its binding)."""
    rules: list[dict[str, Any]] = []
    missing: list[tuple[str, str]] = []
    for bound in _bound_roles(store, user, namespace):
        if bound.role is None:
            missing.append((str(bound.ref.get("kind", "")), str(bound.ref.get("name", ""))))
        rules.extend(_rules(bound.role))
    return Resolution(rules, missing)


def aggregate_error(messages: list[str]) -> str:
    """utilerrors.NewAggregate(errs).Error(): one message alone, several deduplicated in brackets."""
    unique = list(dict.fromkeys(messages))
    return unique[0] if len(unique) == 1 else "[" + ", ".join(unique) + "]"


def decide(ctx: SimContext, attrs: Attributes) -> Decision:
    """The configured authorizer: `--authorization always-allow` or RBAC."""
    if ctx.options.authorization == "always-allow":
        return Decision(True)
    return authorize(ctx.store, attrs)
