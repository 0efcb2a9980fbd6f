"""`token-broker demo`: a Kubernetes API simulator, a broker in front of it, and a demo caller — everything a
newcomer needs to see a token issued, all on loopback. The end-to-end tests run the same stack."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
import ssl
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

import aiohttp

from broker._kits.pki import CertificateAuthority, IssuedCert, write_private
from broker.app import Broker
from broker.kube.rbac import broker_cluster_role, cluster_role_binding
from broker.settings import load_config
from kubesim import KubeSim, SimOptions

if TYPE_CHECKING:
    from controlplane import ControlPlane

BROKER_USER = "token-broker"
DEMO_NAMESPACE = "demo"
DEMO_CALLER = ("jenkins", ["ci"])


class Cluster(Protocol):
    """What the stack needs of a running API server: the simulator and the real control plane both offer it."""

    @property
    def url(self) -> str: ...

    @property
    def ca_pem(self) -> bytes: ...

    def client_cert(self, cn: str, groups: list[str] | tuple[str, ...] = ()) -> IssuedCert: ...

    @property
    def admin_kubeconfig(self) -> Path | None: ...

    def write_kubeconfig(
        self,
        path: Path,
        *,
        cert: IssuedCert | None = None,
        token: str | None = None,
        namespace: str = "default",
    ) -> Path: ...


@dataclass(frozen=True)
class DemoPaths:
    root: Path

    @property
    def cluster_dir(self) -> Path:
        return self.root / "cluster"

    @property
    def config(self) -> Path:
        return self.root / "broker.toml"

    @property
    def broker_kubeconfig(self) -> Path:
        return self.root / "broker.kubeconfig"

    @property
    def server_ca(self) -> Path:
        return self.root / "tls" / "server-ca.crt"

    @property
    def server_cert(self) -> Path:
        return self.root / "tls" / "server.crt"

    @property
    def server_key(self) -> Path:
        return self.root / "tls" / "server.key"

    @property
    def client_ca(self) -> Path:
        return self.root / "tls" / "client-ca.crt"

    @property
    def client_ca_key(self) -> Path:
        return self.root / "tls" / "client-ca.key"

    def caller_cert(self, name: str) -> tuple[Path, Path]:
        return self.root / "callers" / f"{name}.crt", self.root / "callers" / f"{name}.key"


def _free(host: str, port: int) -> bool:
    with socket.socket() as sock:
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


def _port_or_ephemeral(host: str, port: int) -> int:
    return port if port and _free(host, port) else 0


CONFIG_TEMPLATE = """\
# Written by `token-broker demo`. A real deployment starts from config.example.toml.
[server]
listen = "{listen}"
metrics_listen = "{metrics_listen}"
tls_cert = "{server_cert}"
tls_key = "{server_key}"
client_ca = "{client_ca}"

[[clusters]]
name = "demo"
kubeconfig = "{kubeconfig}"
request_timeout_seconds = 5

[[roles]]
name = "deployer"
description = "Deploy into the demo and ci-* namespaces"
service_account = "deployer"
namespaces = ["{namespace}", "ci-*"]
default_ttl = "15m"
max_ttl = "1h"
revocable = true

[[roles]]
name = "reader"
description = "Read-only access to the demo namespace"
service_account = "reader"
namespaces = ["{namespace}"]
default_ttl = "10m"
max_ttl = "30m"

[[roles]]
name = "legacy-robot"
description = "A non-expiring Secret token, for tools that cannot refresh"
service_account = "legacy-robot"
namespaces = ["{namespace}"]
mode = "legacy-secret"

[janitor]
# the stack's own namespace: stacks sharing one cluster never contend for one Lease
lease_namespace = "{namespace}"
{janitor}
[audit]
{audit}
[[grants]]
name = "ci-deploys"
groups = ["ci"]
roles = ["deployer", "reader"]

[[grants]]
name = "operators"
groups = ["operators"]
roles = ["*"]

[auth.mtls]
enabled = true
"""


async def _apply(server: str, admin_ssl: ssl.SSLContext, objects: list[tuple[str, dict[str, Any]]]) -> None:
    """POST each object as the cluster admin would with `kubectl create`; AlreadyExists is fine."""
    timeout = aiohttp.ClientTimeout(total=10)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        for path, body in objects:
            async with session.post(server + path, json=body, ssl=admin_ssl) as resp:
                if resp.status not in (200, 201, 409):
                    raise RuntimeError(f"demo set-up: POST {path} → {resp.status} {await resp.text()}")


class DemoStack:
    """An API server (the simulator unless a running cluster is given) + broker + certificates under one
    directory. On a shared cluster each stack keeps to its own namespace and broker identity."""

    def __init__(
        self,
        root: Path,
        *,
        api_port: int = 8443,
        metrics_port: int = 9090,
        sim_port: int = 6443,
        sim_options: SimOptions | None = None,
        cluster: Cluster | None = None,
        namespace: str = DEMO_NAMESPACE,
        broker_user: str = BROKER_USER,
        janitor_config: str = "",
        audit_config: str = "",
        extra_config: str = "",
    ) -> None:
        self.paths = DemoPaths(root.resolve())
        self.namespace = namespace
        self.broker_user = broker_user
        # TOML lines added to the [janitor] and [audit] sections, and appended to the generated config
        self._sections = {"janitor": janitor_config, "audit": audit_config}
        self._extra_config = extra_config
        self._ports = (api_port, metrics_port, sim_port)
        # the simulator when the stack owns its API server; None on a cluster someone else runs
        self.sim: KubeSim | None = None
        if cluster is None:
            self.sim = KubeSim(
                options=sim_options,
                state_dir=self.paths.cluster_dir,
                port=_port_or_ephemeral("127.0.0.1", sim_port),
            )
        self.cluster: Cluster = cluster or self.sim  # type: ignore[assignment]
        self.broker: Broker | None = None
        self.client_ca: CertificateAuthority | None = None

    @property
    def broker_url(self) -> str:
        assert self.broker is not None and self.broker.listeners is not None
        return self.broker.listeners.api_url

    def make_caller(self, name: str, groups: list[str]) -> tuple[Path, Path]:
        """A caller certificate signed by the broker's client CA (what `token-broker pki client` does)."""
        assert self.client_ca is not None
        cert_path, key_path = self.paths.caller_cert(name)
        issued = self.client_ca.issue_client_cert(name, groups, days=30)
        cert_path.parent.mkdir(parents=True, exist_ok=True)
        cert_path.write_bytes(issued.cert_pem)
        write_private(key_path, issued.key_pem)
        return cert_path, key_path

    def _write_tls(self) -> None:
        p = self.paths
        server_ca = CertificateAuthority.generate("token-broker demo server CA")
        serving = server_ca.issue_server_cert(["127.0.0.1", "localhost", "::1"])
        p.server_ca.parent.mkdir(parents=True, exist_ok=True)
        p.server_ca.write_bytes(server_ca.cert_pem)
        p.server_cert.write_bytes(serving.cert_pem)
        write_private(p.server_key, serving.key_pem)
        self.client_ca = CertificateAuthority.generate("token-broker demo client CA")
        p.client_ca.write_bytes(self.client_ca.cert_pem)
        write_private(p.client_ca_key, self.client_ca.key_pem)

    def _admin_ssl(self) -> ssl.SSLContext:
        admin = self.cluster.client_cert("admin", ["system:masters"])
        cert_file, key_file = self.paths.root / "tls" / "admin.crt", self.paths.root / "tls" / "admin.key"
        cert_file.write_bytes(admin.cert_pem)
        write_private(key_file, admin.key_pem)
        context = ssl.create_default_context(cadata=self.cluster.ca_pem.decode())
        context.load_cert_chain(str(cert_file), str(key_file))
        return context

    async def _grant_broker_rbac(self) -> None:
        cfg = load_config(self.paths.config)
        rbac = "/apis/rbac.authorization.k8s.io/v1"
        user = self.broker_user
        await _apply(
            self.cluster.url,
            self._admin_ssl(),
            [
                (
                    "/api/v1/namespaces",
                    {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": self.namespace}},
                ),
                (f"{rbac}/clusterroles", broker_cluster_role(user, cfg.roles, janitor_leases=True)),
                (
                    f"{rbac}/clusterrolebindings",
                    cluster_role_binding(user, user, {"kind": "User", "name": user}),
                ),
                # what a deployer token may do once issued: edit the demo namespace
                (
                    f"{rbac}/namespaces/{self.namespace}/rolebindings",
                    {
                        "apiVersion": "rbac.authorization.k8s.io/v1",
                        "kind": "RoleBinding",
                        "metadata": {"name": "deployer-edit", "namespace": self.namespace},
                        "roleRef": {
                            "apiGroup": "rbac.authorization.k8s.io",
                            "kind": "ClusterRole",
                            "name": "edit",
                        },
                        "subjects": [
                            {"kind": "ServiceAccount", "name": "deployer", "namespace": self.namespace}
                        ],
                    },
                ),
            ],
        )

    async def start(self) -> None:
        p = self.paths
        p.root.mkdir(parents=True, exist_ok=True)
        if self.sim is not None:
            await self.sim.start()
        try:
            self._write_tls()
            # the broker's own identity: a client certificate of the cluster CA with least-privilege RBAC
            self.cluster.write_kubeconfig(
                p.broker_kubeconfig, cert=self.cluster.client_cert(self.broker_user, [])
            )
            api_port, metrics_port, _ = self._ports
            p.config.write_text(
                CONFIG_TEMPLATE.format(
                    listen=f"127.0.0.1:{_port_or_ephemeral('127.0.0.1', api_port)}",
                    metrics_listen=f"127.0.0.1:{_port_or_ephemeral('127.0.0.1', metrics_port)}",
                    server_cert=p.server_cert,
                    server_key=p.server_key,
                    client_ca=p.client_ca,
                    kubeconfig=p.broker_kubeconfig,
                    namespace=self.namespace,
                    **self._sections,
                )
                + self._extra_config
            )
            await self._grant_broker_rbac()
            self.make_caller(*DEMO_CALLER)
            self.broker = Broker(p.config)
            await self.broker.start()
        except BaseException:
            await self.stop()
            raise

    async def stop(self) -> None:
        if self.broker is not None:
            await self.broker.stop()
            self.broker = None
        if self.sim is not None:
            await self.sim.stop()

    async def __aenter__(self) -> DemoStack:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.stop()


def instructions(stack: DemoStack) -> str:
    p = stack.paths
    cert, key = p.caller_cert(DEMO_CALLER[0])
    curl = f"curl --fail --silent --show-error --cacert {p.server_ca} --cert {cert} --key {key}"
    url = stack.broker_url
    kubeconfig = p.root / "jenkins.kubeconfig"
    return f"""
kube-token-broker demo is running.
  Kubernetes API {"simulator" if stack.sim else "server"}: {stack.cluster.url}   (admin: kubectl --kubeconfig {stack.cluster.admin_kubeconfig} get ns)
  broker API:               {url}
  metrics:                  {stack.broker.listeners.metrics_url if stack.broker and stack.broker.listeners else ""}/metrics
  broker config:            {p.config}

A token for the demo caller (CN=jenkins, O=ci), as JSON:
  {curl} -H 'Content-Type: application/json' \\
       -d '{{"role":"deployer","namespace":"{stack.namespace}","ttl":"15m"}}' {url}/v1/tokens

The same as a kubeconfig, used by kubectl:
  {curl} -H 'Content-Type: application/json' -d '{{"role":"deployer","namespace":"{stack.namespace}"}}' \\
       -o {kubeconfig} '{url}/v1/tokens?format=kubeconfig'
  kubectl --kubeconfig {kubeconfig} auth whoami
  kubectl --kubeconfig {kubeconfig} -n {stack.namespace} get serviceaccounts

Roles this caller may use:  {curl} {url}/v1/roles
Press Ctrl-C to stop.
"""


def _start_control_plane(root: Path) -> ControlPlane:
    # imported here: the simulator-only demo does not need the control-plane harness
    from controlplane import ControlPlane, locate

    return ControlPlane(locate(), root.resolve() / "control-plane").start()


async def run_demo(
    root: Path,
    *,
    api_port: int = 8443,
    metrics_port: int = 9090,
    sim_port: int = 6443,
    control_plane: bool = False,
) -> None:
    """The demo on the simulator, or on the real control plane when `make control-plane` has built it."""
    plane = await asyncio.to_thread(_start_control_plane, root) if control_plane else None
    stack = DemoStack(root, api_port=api_port, metrics_port=metrics_port, sim_port=sim_port, cluster=plane)
    try:
        await stack.start()
        print(instructions(stack), flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            with contextlib.suppress(NotImplementedError):
                loop.add_signal_handler(sig, stop.set)
        await stop.wait()
    finally:
        await stack.stop()
        if plane is not None:
            await asyncio.to_thread(plane.stop)
