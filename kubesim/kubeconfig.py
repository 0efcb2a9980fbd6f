"""kubeconfig files for the simulator: one cluster, one user (client certificate or bearer token), one context."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import yaml

from broker._kits.pki import IssuedCert, write_private

CLUSTER = "kubesim"


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


def build(
    server: str,
    ca_pem: bytes,
    *,
    user: str,
    cert: IssuedCert | None = None,
    token: str | None = None,
    namespace: str = "default",
) -> dict[str, Any]:
    credentials: dict[str, Any] = {}
    if cert is not None:
        credentials["client-certificate-data"] = _b64(cert.cert_pem)
        credentials["client-key-data"] = _b64(cert.key_pem)
    if token is not None:
        credentials["token"] = token
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {"name": CLUSTER, "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)}}
        ],
        "users": [{"name": user, "user": credentials}],
        "contexts": [
            {
                "name": f"{user}@{CLUSTER}",
                "context": {"cluster": CLUSTER, "user": user, "namespace": namespace},
            }
        ],
        "current-context": f"{user}@{CLUSTER}",
        "preferences": {},
    }


def write(path: Path, config: dict[str, Any]) -> Path:
    """Write a kubeconfig readable by its owner only (it carries a key or a token)."""
    write_private(path, yaml.safe_dump(config, sort_keys=False).encode())
    return path
