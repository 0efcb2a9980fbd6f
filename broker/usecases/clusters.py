"""The configured clusters as the use cases use them."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass

from broker.kube.cluster import Cluster
from broker.kube.verify import ClusterTokenVerifier


@dataclass(frozen=True)
class ClusterHandle:
    """One configured cluster: its API, the verifier of the tokens it signs, and what a rendered kubeconfig
    points at (the config's override, else the broker's own view of the cluster)."""

    name: str
    client: Cluster
    verifier: ClusterTokenVerifier
    server_url: str
    ca_pem: bytes | None


# connected clusters by name, or a callable returning them (looked up per call: they connect after wiring)
Clusters = Mapping[str, Cluster] | Callable[[], Mapping[str, Cluster]]
Handles = Mapping[str, ClusterHandle] | Callable[[], Mapping[str, ClusterHandle]]


def lookup(clusters: Clusters) -> Mapping[str, Cluster]:
    return clusters if isinstance(clusters, Mapping) else clusters()


def lookup_handles(handles: Handles) -> Mapping[str, ClusterHandle]:
    return handles if isinstance(handles, Mapping) else handles()
