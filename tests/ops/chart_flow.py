"""A broker deployed the way the chart deploys it, on the simulator: the chart's ServiceAccount, RBAC and
config.toml, with the broker running as that service account (a kubeconfig holding its token, as a pod's
projected token would). What differs from a pod: loopback listeners and files under a temporary directory."""

from __future__ import annotations

import asyncio
import json
import ssl
import subprocess
import tomllib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp
from backends import kubectl_binary
from cluster_admin import ClusterAdmin, client_ssl
from ops_tools import NAMESPACE, RELEASE, only, render

from broker._kits.pki import CertificateAuthority, write_private
from broker.app import Broker
from broker.cli.demo_stack import Cluster
from broker.settings import BrokerConfig
from kubesim import KubeSim

WORK = "work"  # where tokens are issued
TEAM = {"team": "platform"}


def chart_values(work: str) -> dict[str, Any]:
    return {
        "grafanaDashboard": {"enabled": False},
        "config": {
            "roles": [
                {
                    "name": "deployer",
                    "service_account": "deployer",
                    "namespaces": [work, "ci-*"],
                    "default_ttl": "15m",
                    "revocable": True,
                },
                {
                    "name": "reader",
                    "service_account": "reader",
                    "namespaces": [work],
                    "namespace_selector": "team=platform",
                    "default_ttl": "10m",
                    "max_ttl": "30m",
                },
                {
                    "name": "legacy-robot",
                    "service_account": "legacy-robot",
                    "namespaces": [work],
                    "mode": "legacy-secret",
                },
            ],
            "grants": [
                {"name": "ci", "groups": ["ci"], "roles": ["*"]},
                # examples/in-cluster: an agent pod's own service account, checked with a TokenReview
                {
                    "name": "in-cluster-agents",
                    "users": ["system:serviceaccount:ci:build-agent"],
                    "roles": ["deployer"],
                    "namespaces": [work],
                },
            ],
            "auth": {"kubernetes": {"enabled": True, "audiences": ["token-broker"]}},
        },
    }


@dataclass(frozen=True)
class Deployment:
    """One release of the chart: its name, its namespace, and the namespace its roles issue into."""

    release: str = RELEASE
    namespace: str = NAMESPACE
    work: str = WORK

    def documents(self) -> list[dict[str, Any]]:
        rendered = render(chart_values(self.work), release=self.release, namespace=self.namespace)
        return [d for docs in rendered.values() for d in docs]


DEFAULT = Deployment()


@dataclass
class Flow:
    cluster: Cluster
    deployment: Deployment
    broker: Broker | None  # None while the cluster is being set up
    caller: ssl.SSLContext
    tmp: Path
    real: bool = False

    @property
    def work(self) -> str:
        return self.deployment.work

    @property
    def broker_url(self) -> str:
        assert self.broker is not None and self.broker.listeners is not None
        return self.broker.listeners.api_url

    async def admin_request(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        return await ClusterAdmin(self.cluster).request(method, path, body)

    async def create(self, obj: dict[str, Any]) -> None:
        status, answer = await self.admin_request("POST", collection_path(obj), obj)
        assert status == 201, answer

    async def service_account_token(
        self, namespace: str, name: str, audiences: list[str] | None = None
    ) -> str:
        spec: dict[str, Any] = {"expirationSeconds": 3600}
        if audiences:
            spec["audiences"] = audiences
        body = {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
        path = f"/api/v1/namespaces/{namespace}/serviceaccounts/{name}/token"
        status, answer = await self.admin_request("POST", path, body)
        assert status == 201, answer
        return str(answer["status"]["token"])

    async def issue(self, role: str) -> tuple[int, dict[str, Any]]:
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.post(
                self.broker_url + "/v1/tokens", json={"role": role, "namespace": self.work}, ssl=self.caller
            ) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    async def revoke(self, token_id: str) -> tuple[int, Any]:
        """DELETE /v1/tokens/{token_id} as the caller that was issued the token (its owner)."""
        timeout = aiohttp.ClientTimeout(total=30)
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.delete(f"{self.broker_url}/v1/tokens/{token_id}", ssl=self.caller) as resp,
        ):
            text = await resp.text()
            return resp.status, json.loads(text) if text else None

    async def token_status(self, token: str) -> int:
        """The API server's answer to a request made with `token`: 401 once it is revoked."""
        timeout = aiohttp.ClientTimeout(total=10)
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.post(
                self.cluster.url + "/apis/authentication.k8s.io/v1/selfsubjectreviews",
                json={"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"},
                headers={"Authorization": f"Bearer {token}"},
                ssl=client_ssl(self.cluster),
            ) as resp,
        ):
            await resp.read()
            return resp.status

    async def whoami(self, kubeconfig: Path) -> str:
        result = await run_off_loop(
            [kubectl_binary(self.real), "--kubeconfig", str(kubeconfig), "auth", "whoami", "-o", "json"],
            self.tmp,
        )
        assert result.returncode == 0, result.stderr
        return str(json.loads(result.stdout)["status"]["userInfo"]["username"])

    async def token_whoami(self, token: str) -> str:
        return await self.whoami(self.cluster.write_kubeconfig(self.tmp / "issued.kubeconfig", token=token))


async def run_off_loop(
    args: list[str], home: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[str]:
    """A command run in a thread, so the in-process simulator and broker keep answering it."""
    return await asyncio.to_thread(
        subprocess.run,
        args,
        capture_output=True,
        text=True,
        timeout=60,
        env={"HOME": str(home), "PATH": "/usr/bin:/bin", **(env or {})},
        check=False,
    )


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def chart_objects(deployment: Deployment = DEFAULT) -> list[dict[str, Any]]:
    docs = deployment.documents()
    wanted = {"ServiceAccount", "ClusterRole", "ClusterRoleBinding", "Role", "RoleBinding"}
    return [d for d in docs if d["kind"] in wanted]


def broker_config(tmp: Path, kubeconfig: Path, deployment: Deployment) -> BrokerConfig:
    """The chart's own config.toml with what differs outside a pod: loopback listeners, files under tmp, and the
    cluster reached through a kubeconfig holding the chart service account's token instead of in_cluster."""
    docs = deployment.documents()
    (configmap,) = [d for d in docs if d["kind"] == "ConfigMap" and "config.toml" in d["data"]]
    data = tomllib.loads(configmap["data"]["config.toml"])
    (cluster,) = data["clusters"]
    assert cluster == {"name": "in-cluster", "in_cluster": True}
    data["clusters"] = [{"name": "in-cluster", "kubeconfig": str(kubeconfig), "request_timeout_seconds": 5}]
    server_ca = CertificateAuthority.generate("ops test server CA")
    serving = server_ca.issue_server_cert(["127.0.0.1"])
    client_ca = CertificateAuthority.generate("ops test client CA")
    for name, pem in (("server-ca.crt", server_ca.cert_pem), ("tls.crt", serving.cert_pem)):
        (tmp / name).write_bytes(pem)
    write_private(tmp / "tls.key", serving.key_pem)
    (tmp / "client-ca.crt").write_bytes(client_ca.cert_pem)
    caller = client_ca.issue_client_cert("jenkins", ["ci"], days=1)
    (tmp / "caller.crt").write_bytes(caller.cert_pem)
    write_private(tmp / "caller.key", caller.key_pem)
    data["audit"]["sqlite_path"] = str(tmp / "audit.sqlite3")
    if "audit" not in BrokerConfig.model_fields:
        del data["audit"]  # until broker.settings takes in the [audit] section of broker/audit/settings.py
    data["server"].update(
        listen="127.0.0.1:0",
        metrics_listen="127.0.0.1:0",
        tls_cert=str(tmp / "tls.crt"),
        tls_key=str(tmp / "tls.key"),
        client_ca=str(tmp / "client-ca.crt"),
    )
    return BrokerConfig.model_validate(data, context={"base_dir": tmp})


@asynccontextmanager
async def running_flow(
    tmp: Path,
    objects: list[dict[str, Any]],
    cluster: Cluster | None = None,
    deployment: Deployment = DEFAULT,
) -> AsyncIterator[Flow]:
    """A cluster holding the chart's RBAC objects (`objects`, rendered for `deployment`), and a broker running as
    the chart's service account. Without a cluster given, a simulator of the flow's own."""
    if cluster is not None:
        async with _deployed(cluster, tmp, objects, deployment, real=True) as flow:
            yield flow
        return
    async with (
        KubeSim(state_dir=tmp / "sim") as sim,
        _deployed(sim, tmp, objects, deployment, real=False) as flow,
    ):
        yield flow


@asynccontextmanager
async def _deployed(
    cluster: Cluster, tmp: Path, objects: list[dict[str, Any]], deployment: Deployment, *, real: bool
) -> AsyncIterator[Flow]:
    setup = Flow(cluster, deployment, None, ssl.create_default_context(), tmp, real)
    for obj in (namespace(deployment.namespace), namespace(deployment.work, TEAM), *objects):
        await setup.create(obj)
    sa = only(objects, "ServiceAccount")["metadata"]
    token = await setup.service_account_token(sa["namespace"], sa["name"])
    config = broker_config(tmp, cluster.write_kubeconfig(tmp / "broker.kubeconfig", token=token), deployment)
    caller = ssl.create_default_context(cafile=str(tmp / "server-ca.crt"))
    caller.load_cert_chain(str(tmp / "caller.crt"), str(tmp / "caller.key"))
    async with Broker(tmp / "config.toml", config=config) as broker:
        yield Flow(cluster, deployment, broker, caller, tmp, real)


def collection_path(obj: dict[str, Any]) -> str:
    plural = {
        "Namespace": "namespaces",
        "ServiceAccount": "serviceaccounts",
        "ClusterRole": "clusterroles",
        "ClusterRoleBinding": "clusterrolebindings",
        "Role": "roles",
        "RoleBinding": "rolebindings",
    }[obj["kind"]]
    prefix = "/api/v1" if obj["apiVersion"] == "v1" else f"/apis/{obj['apiVersion']}"
    namespace = obj["metadata"].get("namespace")
    return f"{prefix}/namespaces/{namespace}/{plural}" if namespace else f"{prefix}/{plural}"
