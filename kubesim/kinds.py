"""The resource types several simulator modules refer to (core v1, and RBAC, which the authorizer reads)."""

from __future__ import annotations

from .state import ResourceType

NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), singular="namespace")
SERVICEACCOUNTS = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), singular="serviceaccount"
)
SECRETS = ResourceType("", "v1", "secrets", "Secret", True, singular="secret")
PODS = ResourceType("", "v1", "pods", "Pod", True, ("po",), singular="pod")
NODES = ResourceType("", "v1", "nodes", "Node", False, ("no",), singular="node")

RBAC_GROUP = "rbac.authorization.k8s.io"
ROLES = ResourceType(RBAC_GROUP, "v1", "roles", "Role", True, singular="role")
CLUSTERROLES = ResourceType(RBAC_GROUP, "v1", "clusterroles", "ClusterRole", False, singular="clusterrole")
ROLEBINDINGS = ResourceType(RBAC_GROUP, "v1", "rolebindings", "RoleBinding", True, singular="rolebinding")
CLUSTERROLEBINDINGS = ResourceType(
    RBAC_GROUP, "v1", "clusterrolebindings", "ClusterRoleBinding", False, singular="clusterrolebinding"
)
