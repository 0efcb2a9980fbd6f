"""Knobs of one simulated API server (the flags a kube-apiserver would take)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal


@dataclass
class SimOptions:
    # --service-account-issuer; empty means "https://<listen address>" once the port is known
    issuer: str = ""
    # --api-audiences; empty means [issuer]
    api_audiences: list[str] = field(default_factory=list)
    # --service-account-max-token-expiration in seconds; 0 means no cap
    max_token_expiration: int = 0
    # how long the legacy token controller waits before filling a token Secret
    legacy_token_delay: float = 0.05
    authorization: Literal["rbac", "always-allow"] = "rbac"
    # namespaces that exist at start, as in a fresh cluster
    initial_namespaces: tuple[str, ...] = ("default", "kube-system", "kube-public", "kube-node-lease")
    # version reported by /version
    git_version: str = "v1.32.0"
