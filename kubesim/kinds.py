"""Core v1 resource types the token machinery touches. Other simulator modules may import these too."""

from __future__ import annotations

from .state import ResourceType

NAMESPACES = ResourceType("", "v1", "namespaces", "Namespace", False, ("ns",), singular="namespace")
SERVICEACCOUNTS = ResourceType(
    "", "v1", "serviceaccounts", "ServiceAccount", True, ("sa",), singular="serviceaccount"
)
SECRETS = ResourceType("", "v1", "secrets", "Secret", True, singular="secret")
PODS = ResourceType("", "v1", "pods", "Pod", True, ("po",), singular="pod")
NODES = ResourceType("", "v1", "nodes", "Node", False, ("no",), singular="node")
