"""The simulator as a process (`token-broker kube-sim`, or bench.simproc with seeded accounts), the objects the
broker needs in it, and the admin's way in."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import aiohttp

from broker._kits.pki import CertificateAuthority, write_private
from broker.kube.rbac import broker_cluster_role, cluster_role_binding
from kubesim import kubeconfig

from .names import BROKER_USER, NAMESPACE, ROLE_ACCOUNTS, SERVICE_ACCOUNT, START_TIMEOUT
from .pki import client_context
from .procs import REPO, VENV_BIN, ChildProcess, banner_url, bench_env


@dataclass(frozen=True)
class _RoleShape:
    """What broker_cluster_role needs to know of a role: one revocable and one plain role cover every call."""

    mode: str = "token-request"
    revocable: bool = False
    create_service_account: bool = True
    namespace_selector: str | None = None
    ephemeral_service_account: bool = False


@dataclass
class Sim:
    """A running simulator process and the admin's way in."""

    process: ChildProcess
    url: str
    state_dir: Path
    ca: CertificateAuthority
    admin_cert: Path
    admin_key: Path

    @property
    def admin_kubeconfig(self) -> Path:
        return self.state_dir / "admin.kubeconfig"

    def admin_ssl(self) -> ssl.SSLContext:
        return client_context(self.ca.cert_pem, self.admin_cert, self.admin_key)

    async def apply(self, objects: Sequence[tuple[str, dict[str, Any]]]) -> None:
        """POST each object as `kubectl create` would; AlreadyExists is fine."""
        timeout = aiohttp.ClientTimeout(total=30)
        connector = aiohttp.TCPConnector(ssl=self.admin_ssl())
        async with aiohttp.ClientSession(timeout=timeout, trust_env=False, connector=connector) as session:
            for path, body in objects:
                async with session.post(self.url + path, json=body) as resp:
                    if resp.status not in (200, 201, 409):
                        raise RuntimeError(f"bench set-up: POST {path} → {resp.status} {await resp.text()}")

    async def prepare(self) -> None:
        """The bench namespace, its service accounts, and the broker's least-privilege RBAC."""
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        shapes = [_RoleShape(), _RoleShape(revocable=True)]
        objects: list[tuple[str, dict[str, Any]]] = [
            (
                "/api/v1/namespaces",
                {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": NAMESPACE}},
            ),
            (f"{rbac}/clusterroles", broker_cluster_role(BROKER_USER, shapes, janitor_leases=True)),
            (
                f"{rbac}/clusterrolebindings",
                cluster_role_binding(BROKER_USER, BROKER_USER, {"kind": "User", "name": BROKER_USER}),
            ),
        ]
        for name in (SERVICE_ACCOUNT, *ROLE_ACCOUNTS):
            objects.append(
                (
                    f"/api/v1/namespaces/{NAMESPACE}/serviceaccounts",
                    {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": name}},
                )
            )
        await self.apply(objects)

    def broker_kubeconfig(self, path: Path) -> Path:
        """The broker's identity in this cluster: a client certificate of the cluster CA."""
        cert = self.ca.issue_client_cert(BROKER_USER, [])
        return kubeconfig.write(
            path, kubeconfig.build(self.url, self.ca.cert_pem, user=BROKER_USER, cert=cert)
        )

    async def stop(self) -> None:
        await self.process.stop()


async def start_sim(root: Path, name: str, argv: Sequence[str]) -> Sim:
    """Start a simulator command (it must print the kube-sim banner) and wait until it serves."""
    state_dir = root / name
    process = ChildProcess(
        name,
        [*argv, "--listen", "127.0.0.1:0", "--state-dir", str(state_dir)],
        root / f"{name}.log",
        bench_env(root),
        cwd=REPO,
    )
    await process.start()
    try:
        url = await process.wait_for(banner_url, START_TIMEOUT)
        ca = CertificateAuthority.load(state_dir / "ca.crt", state_dir / "ca.key")
        admin = ca.issue_client_cert("admin", ["system:masters"])
        admin_cert, admin_key = state_dir / "bench-admin.crt", state_dir / "bench-admin.key"
        admin_cert.write_bytes(admin.cert_pem)
        write_private(admin_key, admin.key_pem)
        sim = Sim(process, str(url), state_dir, ca, admin_cert, admin_key)
        await sim.prepare()
    except BaseException:
        await process.stop()
        raise
    return sim


def kube_sim_argv() -> list[str]:
    return [str(VENV_BIN / "token-broker"), "kube-sim"]


def seeded_sim_argv(namespaces: int, per_namespace: int) -> list[str]:
    return [
        str(VENV_BIN / "python"),
        "-m",
        "bench.simproc",
        "--namespaces",
        str(namespaces),
        "--per-namespace",
        str(per_namespace),
    ]
