"""The real Kubernetes control plane (kube-apiserver, kube-controller-manager, etcd) built from the Kubernetes Go
modules by `make control-plane`, started on loopback for the tests and the demo. Same shape as the simulator's
harness: `with ControlPlane(binaries, state_dir) as plane:` gives a URL, the cluster CA, an admin kubeconfig and
client certificates of the cluster CA."""

from __future__ import annotations

from .binaries import Binaries, ControlPlaneUnavailable, locate
from .plane import ControlPlane, PlaneOptions

__all__ = ["Binaries", "ControlPlane", "ControlPlaneUnavailable", "PlaneOptions", "locate"]
