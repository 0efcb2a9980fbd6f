"""RBAC escalation prevention, as the rbac registries' policy-based storage does it (pkg/registry/rbac/*/policybased,
pkg/registry/rbac/escalation_check.go, pkg/registry/rbac/validation.ConfirmNoEscalation and
component-helpers' Covers).

Creating or updating a Role/ClusterRole needs every permission it grants already held at that scope, or the
`escalate` verb on roles/clusterroles; creating or updating a binding needs every permission of the referenced
role at the binding's scope, or `bind` on that role. `system:masters` is exempt. These checks run before
validation, as the policy-based storage wraps the generic one.
"""

from __future__ import annotations

import json
from typing import Any

from . import status
from .context import SimContext
from .rbac import SUPERUSER_GROUP, Attributes, aggregate_error, decide, referenced_role, rules_for
from .request_info import RequestInfo
from .resources import Requester
from .state import Obj
from .status import ApiError

GROUP = "rbac.authorization.k8s.io"
Rule = dict[str, Any]


# -- component-helpers/auth/rbac/validation: Covers ----------------------------------------------------------
def breakdown(rule: Rule) -> list[Rule]:
    """BreakdownRule: one rule for each group, resource, verb (and resourceName), then each URL and verb."""
    out: list[Rule] = []
    verbs = rule.get("verbs") or []
    for group in rule.get("apiGroups") or []:
        for resource in rule.get("resources") or []:
            for verb in verbs:
                base = {"apiGroups": [group], "resources": [resource], "verbs": [verb]}
                names = rule.get("resourceNames") or []
                out.extend([{**base, "resourceNames": [n]} for n in names] if names else [base])
    for url in rule.get("nonResourceURLs") or []:
        out.extend({"nonResourceURLs": [url], "verbs": [verb]} for verb in verbs)
    return out


def _has_all(owned: list[str], wanted: list[str]) -> bool:
    return set(wanted) <= set(owned)


def _resources_cover(owned: list[str], wanted: list[str]) -> bool:
    if "*" in owned or _has_all(owned, wanted):
        return True
    for path in wanted:
        if path in owned:
            continue
        if "/" not in path or "*/" + path.split("/", 1)[1] not in owned:
            return False
    return True


def _url_covers(owner: str, path: str) -> bool:
    return owner == path or (owner.endswith("*") and path.startswith(owner.rstrip("*")))


def _rule_covers(owner: Rule, sub: Rule) -> bool:
    """ruleCovers: the owner rule (any shape) allows everything the single-valued sub rule does."""
    owner_verbs, owner_groups = owner.get("verbs") or [], owner.get("apiGroups") or []
    owner_names, sub_names = owner.get("resourceNames") or [], sub.get("resourceNames") or []
    return (
        ("*" in owner_verbs or _has_all(owner_verbs, sub.get("verbs") or []))
        and ("*" in owner_groups or _has_all(owner_groups, sub.get("apiGroups") or []))
        and _resources_cover(owner.get("resources") or [], sub.get("resources") or [])
        and all(
            any(_url_covers(o, p) for o in owner.get("nonResourceURLs") or [])
            for p in sub.get("nonResourceURLs") or []
        )
        and (not owner_names if not sub_names else not owner_names or _has_all(owner_names, sub_names))
    )


def uncovered(owner_rules: list[Rule], servant_rules: list[Rule]) -> list[Rule]:
    """Covers' second result: the broken-down servant rules no owner rule covers."""
    return [
        sub
        for rule in servant_rules
        for sub in breakdown(rule)
        if not any(_rule_covers(owner, sub) for owner in owner_rules)
    ]


# -- pkg/registry/rbac/validation: CompactRules and the message -----------------------------------------------
def compact(rules: list[Rule]) -> list[Rule]:
    """CompactRules: single group/resource(/name) rules that differ only in verbs become one."""
    out: list[Rule] = []
    simple: dict[tuple[str, str, str | None], Rule] = {}
    for rule in rules:
        names = rule.get("resourceNames") or []
        groups, resources = rule.get("apiGroups") or [], rule.get("resources") or []
        if len(names) > 1 or rule.get("nonResourceURLs") or len(groups) != 1 or len(resources) != 1:
            out.append(rule)
            continue
        key = (groups[0], resources[0], names[0] if names else None)
        if key in simple:
            simple[key]["verbs"] = [*simple[key]["verbs"], *(rule.get("verbs") or [])]
        else:
            simple[key] = {**rule, "verbs": list(rule.get("verbs") or [])}
    return out + list(simple.values())


def _go_strings(values: list[str]) -> str:
    # fmt's %q of a []string: ["a" "b"]
    return "[" + " ".join(json.dumps(v, ensure_ascii=False) for v in values) + "]"


def compact_string(rule: Rule) -> str:
    """rbacv1helpers.CompactString: {APIGroups:[""], Resources:["secrets"], Verbs:["get"]}."""
    parts = [
        f"{label}:{_go_strings(rule[key])}"
        for label, key in (
            ("APIGroups", "apiGroups"),
            ("Resources", "resources"),
            ("NonResourceURLs", "nonResourceURLs"),
            ("ResourceNames", "resourceNames"),
            ("Verbs", "verbs"),
        )
        if rule.get(key)
    ]
    return "{" + ", ".join(parts) + "}"


def escalation(
    ctx: SimContext, requester: Requester, namespace: str, rules: list[Rule], not_found_resource: str
) -> str | None:
    """ConfirmNoEscalation: None when the requester holds every rule, else the reason it is refused. A role
    reference of the requester's own bindings that does not resolve is reported the way the registry's getter
    words it (naming the resource of the request in progress, `not_found_resource`)."""
    user = requester.user
    held = rules_for(ctx.store, user, namespace)
    missing = uncovered(held.rules, rules)
    if not missing:
        return None
    lines = sorted({compact_string(rule) for rule in compact(missing)})
    message = (
        f"user {json.dumps(user.username, ensure_ascii=False)} (groups={_go_strings(user.groups)}) is attempting "
        "to grant RBAC permissions not currently held:\n" + "\n".join(lines)
    )
    if held.missing:
        errors = [f'{not_found_resource}.{GROUP} "{name}" not found' for _kind, name in held.missing]
        message += f"; resolution errors: [{aggregate_error(errors)}]"
    return message


# -- the policy-based storages ---------------------------------------------------------------------------------
def _superuser(requester: Requester) -> bool:
    return SUPERUSER_GROUP in requester.user.groups


def _allowed(
    ctx: SimContext, requester: Requester, verb: str, resource: str, name: str, namespace: str
) -> bool:
    attrs = Attributes(
        requester.user, verb, True, namespace=namespace, api_group=GROUP, resource=resource, name=name
    )
    return decide(ctx, attrs).allowed


def only_gc_fields_change(obj: Obj, old: Obj | None) -> bool:
    """IsOnlyMutatingGCFields: only ownerReferences and finalizers (and managedFields/selfLink) differ."""
    if old is None:
        return False
    ignored = ("ownerReferences", "finalizers", "managedFields", "selfLink")

    def stripped(o: Obj) -> Obj:
        meta = {k: v for k, v in (o.get("metadata") or {}).items() if k not in ignored}
        return {**o, "metadata": meta}

    return stripped(obj) == stripped(old)


def _forbidden(info: RequestInfo, name: str, reason: str) -> ApiError:
    return status.forbidden_because(info.resource, GROUP, name, reason)


def guard_role(ctx: SimContext, requester: Requester, obj: Obj, old: Obj | None) -> None:
    """role/clusterrole policybased Storage.Create/Update."""
    info = requester.info
    if _superuser(requester) or _allowed(
        ctx, requester, "escalate", info.resource, info.name, info.namespace
    ):
        return
    if only_gc_fields_change(obj, old):
        return
    rules = [r for r in obj.get("rules") or [] if isinstance(r, dict)]
    reason = escalation(ctx, requester, info.namespace, rules, info.resource)
    if reason is not None:
        raise _forbidden(info, str(obj["metadata"].get("name") or ""), reason)


def guard_binding(ctx: SimContext, requester: Requester, obj: Obj, old: Obj | None) -> None:
    """rolebinding/clusterrolebinding policybased Storage.Create/Update."""
    info = requester.info
    if _superuser(requester) or only_gc_fields_change(obj, old):
        return
    ref = obj.get("roleRef") or {}
    kind, name = ref.get("kind"), str(ref.get("name") or "")
    target = {"ClusterRole": "clusterroles", "Role": "roles"}.get(str(kind))
    if target is not None and _bind_allowed(ctx, requester, ref, target, info.namespace):
        return
    if target is None:
        # GetRoleReferenceRules' plain error: a 500 without a reason
        raise ApiError(500, "", f"unsupported role reference kind: {json.dumps(kind)}")
    role = referenced_role(ctx.store, ref, info.namespace)
    if role is None:
        # the registry's getter names the resource of the request in progress
        raise status.not_found(info.resource, name, GROUP)
    rules = [r for r in role.get("rules") or [] if isinstance(r, dict)]
    reason = escalation(ctx, requester, info.namespace, rules, info.resource)
    if reason is not None:
        raise _forbidden(info, str(obj["metadata"].get("name") or ""), reason)


def _bind_allowed(
    ctx: SimContext, requester: Requester, ref: dict[str, Any], target: str, namespace: str
) -> bool:
    # BindingAuthorized: `bind` on the role, in the binding's namespace (none for a ClusterRoleBinding)
    attrs = Attributes(
        requester.user,
        "bind",
        True,
        namespace=namespace,
        api_group=str(ref.get("apiGroup") or ""),
        resource=target,
        name=str(ref.get("name") or ""),
    )
    return decide(ctx, attrs).allowed
