"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding, ClusterRoleBinding (validation from
pkg/apis/rbac/validation) and the bootstrap policy of a fresh cluster (plugin/pkg/auth/authorizer/rbac/bootstrappolicy).

Escalation prevention (a Role or binding granting more than its author holds needs `escalate`/`bind`) is
rbac_escalation's.
"""

from __future__ import annotations

from typing import Any

from .context import SimContext
from .kinds import CLUSTERROLEBINDINGS, CLUSTERROLES, RBAC_GROUP, ROLEBINDINGS, ROLES
from .rbac_escalation import guard_binding, guard_role
from .resources import Strategy, cannot_handle, deep
from .state import Obj, ResourceType, Store
from .status import Cause
from .tables import AGE, CREATED_AT, NAME, Column
from .validation import dns1123_subdomain, invalid_cause, path_segment_name, required_cause, unsupported_cause

GROUP = RBAC_GROUP

_RULE_LISTS = ("verbs", "apiGroups", "resources", "resourceNames", "nonResourceURLs")


# -- roles --------------------------------------------------------------------------------------------------
def _prepare_role(rtype: ResourceType) -> Any:
    def prepare(_ctx: SimContext, obj: Obj, _old: Obj | None) -> None:
        rules = obj.get("rules")
        if rules is None:
            # Role.rules has no omitempty: an empty role is served as "rules": null
            obj["rules"] = None
            return
        if not isinstance(rules, list) or not all(isinstance(r, dict) for r in rules):
            raise cannot_handle(rtype, "rules", "[]v1.PolicyRule", rules)
        for rule in rules:
            for key in _RULE_LISTS:
                value = rule.get(key)
                if value is not None and (
                    not isinstance(value, list) or not all(isinstance(v, str) for v in value)
                ):
                    raise cannot_handle(rtype, f"rules.{key}", "[]string", value)

    return prepare


def _validate_rules(namespaced: bool) -> Any:
    def validate(_ctx: SimContext, obj: Obj, _old: Obj | None) -> list[Cause]:
        # validation.ValidatePolicyRule
        causes: list[Cause] = []
        for i, rule in enumerate(obj.get("rules") or []):
            path = f"rules[{i}]"
            if not rule.get("verbs"):
                causes.append(required_cause(f"{path}.verbs", "verbs must contain at least one value"))
            urls = rule.get("nonResourceURLs") or []
            if urls:
                if namespaced:
                    causes.append(
                        invalid_cause(
                            f"{path}.nonResourceURLs",
                            urls,
                            "namespaced rules cannot apply to non-resource URLs",
                        )
                    )
                if rule.get("apiGroups") or rule.get("resources") or rule.get("resourceNames"):
                    causes.append(
                        invalid_cause(
                            f"{path}.nonResourceURLs",
                            urls,
                            "rules cannot apply to both regular resources and non-resource URLs",
                        )
                    )
                continue
            if not rule.get("apiGroups"):
                causes.append(
                    required_cause(f"{path}.apiGroups", "resource rules must supply at least one api group")
                )
            if not rule.get("resources"):
                causes.append(
                    required_cause(f"{path}.resources", "resource rules must supply at least one resource")
                )
        return causes

    return validate


# -- bindings -----------------------------------------------------------------------------------------------
def _prepare_binding(rtype: ResourceType) -> Any:
    def prepare(_ctx: SimContext, obj: Obj, _old: Obj | None) -> None:
        ref = obj.get("roleRef")
        if ref is not None and (
            not isinstance(ref, dict) or not all(isinstance(v, str) for v in ref.values())
        ):
            raise cannot_handle(rtype, "roleRef", "v1.RoleRef", ref)
        subjects = obj.get("subjects")
        if subjects is not None and (
            not isinstance(subjects, list)
            or not all(isinstance(s, dict) and all(isinstance(v, str) for v in s.values()) for s in subjects)
        ):
            raise cannot_handle(rtype, "subjects", "[]v1.Subject", subjects)
        # defaults.go: a User/Group subject defaults its apiGroup to rbac.authorization.k8s.io
        for subject in subjects or []:
            if subject.get("kind") in ("User", "Group") and "apiGroup" not in subject:
                subject["apiGroup"] = GROUP

    return prepare


def _validate_binding(namespaced: bool) -> Any:
    def validate(_ctx: SimContext, obj: Obj, old: Obj | None) -> list[Cause]:
        causes: list[Cause] = []
        ref = obj.get("roleRef") or {}
        if ref.get("apiGroup") != GROUP:
            causes.append(unsupported_cause("roleRef.apiGroup", ref.get("apiGroup", ""), [GROUP]))
        kinds = ["Role", "ClusterRole"] if namespaced else ["ClusterRole"]
        if ref.get("kind") not in kinds:
            causes.append(unsupported_cause("roleRef.kind", ref.get("kind", ""), kinds))
        name = ref.get("name") or ""
        if not name:
            causes.append(required_cause("roleRef.name"))
        else:
            causes.extend(invalid_cause("roleRef.name", name, m) for m in path_segment_name(name))
        for i, subject in enumerate(obj.get("subjects") or []):
            causes.extend(_validate_subject(subject, namespaced, f"subjects[{i}]"))
        if old is not None and old.get("roleRef") != obj.get("roleRef"):
            causes.append(invalid_cause("roleRef", _ref_repr(ref), "cannot change roleRef"))
        return causes

    return validate


def _ref_repr(ref: dict[str, Any]) -> str:
    return f"rbac.RoleRef{{APIGroup:{ref.get('apiGroup', '')}, Kind:{ref.get('kind', '')}, Name:{ref.get('name', '')}}}"


def _validate_subject(subject: dict[str, Any], namespaced: bool, path: str) -> list[Cause]:
    # validation.ValidateRoleBindingSubject
    causes: list[Cause] = []
    name = subject.get("name") or ""
    if not name:
        causes.append(required_cause(f"{path}.name"))
    kind = subject.get("kind")
    if kind == "ServiceAccount":
        if name:
            causes.extend(invalid_cause(f"{path}.name", name, m) for m in dns1123_subdomain(name))
        if subject.get("apiGroup"):
            causes.append(unsupported_cause(f"{path}.apiGroup", subject["apiGroup"], [""]))
        if not namespaced and not subject.get("namespace"):
            causes.append(required_cause(f"{path}.namespace"))
    elif kind in ("User", "Group"):
        if subject.get("apiGroup") != GROUP:
            causes.append(unsupported_cause(f"{path}.apiGroup", subject.get("apiGroup", ""), [GROUP]))
    else:
        causes.append(unsupported_cause(f"{path}.kind", kind or "", ["ServiceAccount", "User", "Group"]))
    return causes


def _subjects_of(kind: str) -> Any:
    def cell(obj: Obj) -> str:
        names = [
            (
                f"{s.get('namespace', '')}/{s.get('name', '')}"
                if kind == "ServiceAccount"
                else s.get("name", "")
            )
            for s in obj.get("subjects") or []
            if s.get("kind") == kind
        ]
        return ", ".join(names)

    return cell


def _binding_columns() -> tuple[Column, ...]:
    return (
        NAME,
        Column("Role", lambda o: f"{deep(o, 'roleRef', 'kind')}/{deep(o, 'roleRef', 'name')}"),
        AGE,
        Column("Users", _subjects_of("User"), priority=1),
        Column("Groups", _subjects_of("Group"), priority=1),
        Column("ServiceAccounts", _subjects_of("ServiceAccount"), priority=1),
    )


def strategies() -> list[Strategy]:
    # rbac registries: AllowCreateOnUpdate is true for all four
    return [
        Strategy(
            ROLES,
            name_check=path_segment_name,
            prepare=_prepare_role(ROLES),
            requester=guard_role,
            validate=_validate_rules(True),
            allow_create_on_update=True,
            columns=(NAME, CREATED_AT),
        ),
        Strategy(
            CLUSTERROLES,
            name_check=path_segment_name,
            prepare=_prepare_role(CLUSTERROLES),
            requester=guard_role,
            validate=_validate_rules(False),
            allow_create_on_update=True,
            columns=(NAME, CREATED_AT),
        ),
        Strategy(
            ROLEBINDINGS,
            name_check=path_segment_name,
            prepare=_prepare_binding(ROLEBINDINGS),
            requester=guard_binding,
            validate=_validate_binding(True),
            allow_create_on_update=True,
            columns=_binding_columns(),
        ),
        Strategy(
            CLUSTERROLEBINDINGS,
            name_check=path_segment_name,
            prepare=_prepare_binding(CLUSTERROLEBINDINGS),
            requester=guard_binding,
            validate=_validate_binding(False),
            allow_create_on_update=True,
            columns=_binding_columns(),
        ),
    ]


# -- bootstrap policy ---------------------------------------------------------------------------------------
_BOOTSTRAP_META = {
    "labels": {"kubernetes.io/bootstrapping": "rbac-defaults"},
    "annotations": {"rbac.authorization.kubernetes.io/autoupdate": "true"},
}
_READ = ["get", "list", "watch"]
_WRITE = ["create", "delete", "deletecollection", "patch", "update"]


def _rule(groups: list[str], resources: list[str], verbs: list[str]) -> dict[str, Any]:
    return {"verbs": verbs, "apiGroups": groups, "resources": resources}


def _urls(urls: list[str], verbs: list[str] | None = None) -> dict[str, Any]:
    return {"verbs": verbs or ["get"], "nonResourceURLs": urls}


_VIEW_RULES = [
    _rule([""], ["pods", "serviceaccounts", "namespaces", "configmaps", "events"], _READ),
    _rule(["coordination.k8s.io"], ["leases"], _READ),
]
_EDIT_RULES = [
    _rule([""], ["pods", "serviceaccounts", "secrets", "configmaps"], _READ + _WRITE),
    _rule([""], ["serviceaccounts/token"], ["create"]),
    _rule([""], ["serviceaccounts"], ["impersonate"]),
    _rule([""], ["namespaces"], _READ),
    _rule(["coordination.k8s.io"], ["leases"], _READ + _WRITE),
]
_ADMIN_RULES = [
    *_EDIT_RULES,
    _rule([GROUP], ["roles", "rolebindings"], _READ + _WRITE),
    _rule(["authorization.k8s.io"], ["localsubjectaccessreviews"], ["create"]),
]

CLUSTER_ROLES: dict[str, list[dict[str, Any]]] = {
    "cluster-admin": [_rule(["*"], ["*"], ["*"]), _urls(["*"], ["*"])],
    "admin": _ADMIN_RULES,
    "edit": _EDIT_RULES,
    "view": _VIEW_RULES,
    "system:discovery": [
        _urls(
            [
                "/api",
                "/api/*",
                "/apis",
                "/apis/*",
                "/healthz",
                "/livez",
                "/openapi",
                "/openapi/*",
                "/readyz",
                "/version",
                "/version/",
            ]
        )
    ],
    "system:basic-user": [
        _rule(["authorization.k8s.io"], ["selfsubjectaccessreviews", "selfsubjectrulesreviews"], ["create"]),
        _rule(["authentication.k8s.io"], ["selfsubjectreviews"], ["create"]),
    ],
    "system:public-info-viewer": [_urls(["/healthz", "/livez", "/readyz", "/version", "/version/"])],
    "system:service-account-issuer-discovery": [
        _urls(
            [
                "/.well-known/openid-configuration",
                "/.well-known/openid-configuration/",
                "/openid/v1/jwks",
                "/openid/v1/jwks/",
            ]
        )
    ],
    "system:certificates.k8s.io:kube-apiserver-client-approver": [
        {
            "verbs": ["approve"],
            "apiGroups": ["certificates.k8s.io"],
            "resources": ["signers"],
            "resourceNames": ["kubernetes.io/kube-apiserver-client"],
        }
    ],
    "system:auth-delegator": [
        _rule(["authentication.k8s.io"], ["tokenreviews"], ["create"]),
        _rule(["authorization.k8s.io"], ["subjectaccessreviews"], ["create"]),
    ],
}


def _group(name: str) -> dict[str, str]:
    return {"apiGroup": GROUP, "kind": "Group", "name": name}


# binding name → (cluster role, subjects)
CLUSTER_ROLE_BINDINGS: dict[str, tuple[str, list[dict[str, str]]]] = {
    "cluster-admin": ("cluster-admin", [_group("system:masters")]),
    "system:discovery": ("system:discovery", [_group("system:authenticated")]),
    "system:basic-user": ("system:basic-user", [_group("system:authenticated")]),
    "system:public-info-viewer": (
        "system:public-info-viewer",
        [_group("system:authenticated"), _group("system:unauthenticated")],
    ),
    "system:service-account-issuer-discovery": (
        "system:service-account-issuer-discovery",
        [_group("system:serviceaccounts")],
    ),
    # Not a bootstrap binding but the one the Kubernetes docs suggest so that external verifiers can
    # discover the issuer anonymously (ServiceAccountIssuerDiscovery); made for everyone here.
    "oidc-reviewer": (
        "system:service-account-issuer-discovery",
        [_group("system:authenticated"), _group("system:unauthenticated")],
    ),
}


def bootstrap(store: Store, public_issuer_discovery: bool = True) -> None:
    """Create the default roles and bindings of a fresh cluster (and `oidc-reviewer` when asked)."""
    for name, rules in CLUSTER_ROLES.items():
        store.create(CLUSTERROLES, None, {"metadata": {"name": name, **_BOOTSTRAP_META}, "rules": rules})
    for name, (role, subjects) in CLUSTER_ROLE_BINDINGS.items():
        if name == "oidc-reviewer" and not public_issuer_discovery:
            continue
        meta = {"name": name, **_BOOTSTRAP_META} if name != "oidc-reviewer" else {"name": name}
        store.create(
            CLUSTERROLEBINDINGS,
            None,
            {
                "metadata": meta,
                "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
                "subjects": subjects,
            },
        )
