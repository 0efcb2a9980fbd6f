"""The RBAC authorizer (plugin/pkg/auth/authorizer/rbac): rules from the ClusterRoleBindings of the user,
plus, for a namespaced request, the RoleBindings of that namespace. A `system:masters` member is allowed
everything (the superuser bypass kube-apiserver installs in front of RBAC)."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from .context import SimContext, UserInfo
from .rbac_v1 import CLUSTERROLEBINDINGS, CLUSTERROLES, ROLEBINDINGS, ROLES
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


def _bound_roles(
    store: Store, user: UserInfo, namespace: str
) -> Iterator[tuple[str, Obj | None, dict[str, Any]]]:
    """(description of the binding, role, matching subject) for every binding that applies."""
    for binding in store.list(CLUSTERROLEBINDINGS):
        for subject in binding.get("subjects") or []:
            if isinstance(subject, dict) and subject_matches(subject, user, ""):
                ref = binding.get("roleRef") or {}
                role = store.try_get(CLUSTERROLES, None, ref.get("name", ""))
                yield (
                    f'ClusterRoleBinding "{binding["metadata"]["name"]}" of ClusterRole "{ref.get("name")}"',
                    role,
                    subject,
                )
                break
    if not namespace:
        return
    for binding in store.list(ROLEBINDINGS, namespace):
        for subject in binding.get("subjects") or []:
            if isinstance(subject, dict) and subject_matches(subject, user, namespace):
                ref = binding.get("roleRef") or {}
                if ref.get("kind") == "ClusterRole":
                    role = store.try_get(CLUSTERROLES, None, ref.get("name", ""))
                else:
                    role = store.try_get(ROLES, namespace, ref.get("name", ""))
                yield (
                    f'RoleBinding "{binding["metadata"]["name"]}/{namespace}" of {ref.get("kind")} "{ref.get("name")}"',
                    role,
                    subject,
                )
                break


def authorize(store: Store, attrs: Attributes) -> Decision:
    if SUPERUSER_GROUP in attrs.user.groups:
        return Decision(True)
    # only resource requests are namespaced; RoleBindings never grant non-resource URLs
    namespace = attrs.namespace if attrs.is_resource_request else ""
    for description, role, subject in _bound_roles(store, attrs.user, namespace):
        if any(rule_allows(rule, attrs) for rule in _rules(role)):
            return Decision(True, f"RBAC: allowed by {description} to {_describe(subject)}")
    return Decision(False)


def rules_for(store: Store, user: UserInfo, namespace: str) -> list[dict[str, Any]]:
    """Every rule that applies to the user in a namespace (SelfSubjectRulesReview)."""
    if SUPERUSER_GROUP in user.groups:
        return [
            {"verbs": ["*"], "apiGroups": ["*"], "resources": ["*"]},
            {"verbs": ["*"], "nonResourceURLs": ["*"]},
        ]
    out: list[dict[str, Any]] = []
    for _description, role, _subject in _bound_roles(store, user, namespace):
        out.extend(_rules(role))
    return out


def decide(ctx: SimContext, attrs: Attributes) -> Decision:
    """The configured authorizer: `--authorization always-allow` or RBAC."""
    if ctx.options.authorization == "always-allow":
        return Decision(True)
    return authorize(ctx.store, attrs)
