"""The least Kubernetes RBAC the broker needs for a set of roles — one definition for the demo, the tests
and the Helm chart, so what we test is what we deploy."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, Protocol


class RoleLike(Protocol):
    @property
    def mode(self) -> str: ...
    @property
    def revocable(self) -> bool: ...
    @property
    def create_service_account(self) -> bool: ...
    @property
    def namespace_selector(self) -> str | None: ...
    @property
    def ephemeral_service_account(self) -> bool: ...


def broker_rules(roles: Iterable[RoleLike], *, token_review: bool = False) -> list[dict[str, Any]]:
    """RBAC rules covering exactly the calls the issuer makes for these roles (and, with token_review, the
    TokenReviews that authenticate in-cluster callers)."""
    roles = list(roles)
    sa_verbs = {"get"}
    secret_verbs: set[str] = set()
    rules: list[dict[str, Any]] = []
    for role in roles:
        if role.create_service_account:
            sa_verbs.add("create")
        if role.ephemeral_service_account:
            # the janitor deletes an on-demand account once its last token has expired
            sa_verbs.add("delete")
        if role.mode == "legacy-secret":
            # find the Secret the broker made earlier (list by label), create one, poll it until filled
            secret_verbs |= {"create", "get", "list"}
        elif role.revocable:
            # the Secret a token is bound to; deleting it revokes the token. list: start-up repair finds the
            # Secret of an interrupted issuance by its token-id label
            secret_verbs |= {"create", "get", "delete", "list"}
    rules.append({"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": sorted(sa_verbs)})
    if any(r.mode == "token-request" for r in roles):
        rules.append({"apiGroups": [""], "resources": ["serviceaccounts/token"], "verbs": ["create"]})
    if secret_verbs:
        rules.append({"apiGroups": [""], "resources": ["secrets"], "verbs": sorted(secret_verbs)})
    if any(r.namespace_selector for r in roles):
        rules.append({"apiGroups": [""], "resources": ["namespaces"], "verbs": ["get"]})
    if token_review:
        rules.append(
            {"apiGroups": ["authentication.k8s.io"], "resources": ["tokenreviews"], "verbs": ["create"]}
        )
    # issuer discovery and JWKS (granted to service accounts by default, but not to a client-cert user)
    rules.append(
        {"nonResourceURLs": ["/.well-known/openid-configuration", "/openid/v1/jwks"], "verbs": ["get"]}
    )
    return rules


def janitor_lease_rules() -> list[dict[str, Any]]:
    """Leader election of the janitor: one Lease in one namespace (a Role there, in the Helm chart)."""
    return [
        {"apiGroups": ["coordination.k8s.io"], "resources": ["leases"], "verbs": ["create", "get", "update"]}
    ]


def broker_cluster_role(
    name: str, roles: Iterable[RoleLike], *, token_review: bool = False, janitor_leases: bool = False
) -> dict[str, Any]:
    """One ClusterRole with everything (the demo's shape; the Helm chart puts the Lease rule in a Role)."""
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "kube-token-broker"}},
        "rules": broker_rules(roles, token_review=token_review)
        + (janitor_lease_rules() if janitor_leases else []),
    }


def cluster_role_binding(name: str, cluster_role: str, subject: dict[str, str]) -> dict[str, Any]:
    return {
        "apiVersion": "rbac.authorization.k8s.io/v1",
        "kind": "ClusterRoleBinding",
        "metadata": {"name": name, "labels": {"app.kubernetes.io/name": "kube-token-broker"}},
        "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": cluster_role},
        "subjects": [subject],
    }
