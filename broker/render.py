"""Documents a caller takes away: a kubeconfig, a kubectl ExecCredential, an exec-plugin kubeconfig. Pure."""

from __future__ import annotations

import base64
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any

import yaml

from broker._kits.rfc3339 import format_time

EXEC_API_VERSION = "client.authentication.k8s.io/v1"


def _cluster_entry(name: str, server_url: str, ca_pem: bytes | None) -> dict[str, Any]:
    cluster: dict[str, Any] = {"server": server_url}
    if ca_pem is not None:
        # kubeconfig carries the PEM bundle base64-encoded (clientcmd/api/v1 Cluster.CertificateAuthorityData)
        cluster["certificate-authority-data"] = base64.b64encode(ca_pem).decode("ascii")
    return {"name": name, "cluster": cluster}


def _context_entry(name: str, cluster: str, user: str, namespace: str | None) -> dict[str, Any]:
    context: dict[str, Any] = {"cluster": cluster, "user": user}
    if namespace:
        context["namespace"] = namespace
    return {"name": name, "context": context}


def _config(
    clusters: list[dict[str, Any]],
    users: list[dict[str, Any]],
    contexts: list[dict[str, Any]],
    current: str,
) -> str:
    doc = {
        "apiVersion": "v1",
        "kind": "Config",
        "preferences": {},
        "clusters": clusters,
        "users": users,
        "contexts": contexts,
        "current-context": current,
    }
    return yaml.safe_dump(doc, sort_keys=False, default_flow_style=False)


def kubeconfig(
    cluster_name: str,
    server_url: str,
    ca_pem: bytes | None,
    user_name: str,
    token: str,
    namespace: str | None,
) -> str:
    """A kubeconfig holding one bearer token, shaped like one an administrator writes by hand.

    The context is named `<user_name>@<cluster_name>` and is the current context.
    """
    context = f"{user_name}@{cluster_name}"
    return _config(
        clusters=[_cluster_entry(cluster_name, server_url, ca_pem)],
        users=[{"name": user_name, "user": {"token": token}}],
        contexts=[_context_entry(context, cluster_name, user_name, namespace)],
        current=context,
    )


def exec_credential(token: str, expires_at: datetime | None) -> dict[str, Any]:
    """What a kubectl exec credential plugin prints (client.authentication.k8s.io/v1 ExecCredential).

    kubectl caches the token until expirationTimestamp and runs the plugin again after it or after a 401.
    expires_at None (a legacy token without exp) omits the timestamp: the field is optional, and kubectl then
    keeps the token until the API server answers 401.
    """
    status: dict[str, Any] = {"token": token}
    if expires_at is not None:
        # second precision, as Kubernetes writes metav1.Time
        status["expirationTimestamp"] = format_time(expires_at)

    return {"apiVersion": EXEC_API_VERSION, "kind": "ExecCredential", "status": status}


@dataclass(frozen=True)
class ExecEntry:
    """One (role, cluster) pair of a `token-broker kubeconfig` document."""

    role: str
    cluster: str
    server_url: str
    ca_pem: bytes | None
    broker_url: str
    namespace: str | None = None
    # paths handed to `token-broker credential` so it can authenticate to the broker
    client_cert: str | None = None
    client_key: str | None = None
    broker_ca: str | None = None
    api_key_file: str | None = None
    command: str = "token-broker"

    @property
    def name(self) -> str:
        return f"{self.role}@{self.cluster}"

    def args(self) -> list[str]:
        # --cluster: the plugin's cache keeps one credential per (role, cluster) pair, as the contexts do
        args = ["credential", "--broker", self.broker_url, "--role", self.role, "--cluster", self.cluster]
        if self.namespace:
            args += ["--namespace", self.namespace]
        if self.client_cert:
            args += ["--cert", self.client_cert]
        if self.client_key:
            args += ["--key", self.client_key]
        if self.broker_ca:
            args += ["--cacert", self.broker_ca]
        if self.api_key_file:
            args += ["--api-key-file", self.api_key_file]
        return args


def exec_kubeconfig(entries: Sequence[ExecEntry], current: str | None = None) -> str:
    """A kubeconfig whose users run `token-broker credential`: one context per (role, cluster).

    Clusters shared by several roles appear once. `current` names the current context (default: the first).
    """
    if not entries:
        raise ValueError("at least one (role, cluster) entry is required")
    clusters: dict[str, dict[str, Any]] = {}
    users: list[dict[str, Any]] = []
    contexts: list[dict[str, Any]] = []
    names: set[str] = set()
    for entry in entries:
        if entry.name in names:
            raise ValueError(f"duplicate context {entry.name!r}")
        names.add(entry.name)
        cluster = _cluster_entry(entry.cluster, entry.server_url, entry.ca_pem)
        known = clusters.setdefault(entry.cluster, cluster)
        if known != cluster:
            raise ValueError(f"cluster {entry.cluster!r} is given with two different servers or CAs")
        users.append(
            {
                "name": entry.name,
                "user": {
                    "exec": {
                        "apiVersion": EXEC_API_VERSION,
                        "command": entry.command,
                        "args": entry.args(),
                        # required in a v1 exec stanza; the plugin never prompts
                        "interactiveMode": "Never",
                        "provideClusterInfo": False,
                    }
                },
            }
        )
        contexts.append(_context_entry(entry.name, entry.cluster, entry.name, entry.namespace))
    if current is not None and current not in names:
        raise ValueError(f"current context {current!r} is not among the entries")
    return _config(list(clusters.values()), users, contexts, current or entries[0].name)
