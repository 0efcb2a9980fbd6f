"""ControlPlane: etcd, kube-apiserver and kube-controller-manager on loopback, with the flags a real cluster runs
(kubeadm's, trimmed to one host), a fresh directory each time, torn down in reverse order."""

from __future__ import annotations

import http.client
import json
import shutil
import ssl
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from broker._kits.pki import CertificateAuthority, IssuedCert, write_private
from kubesim.pipeline import AuditEvent

from .audit_log import AuditLogReader
from .binaries import Binaries, ControlPlaneUnavailable
from .certs import PlaneFiles, write_kubeconfig, write_pki
from .processes import Daemon, free_port

ISSUER = "https://kubernetes.default.svc.cluster.local"
ADMIN_USER = "admin"
ADMIN_GROUP = "system:masters"
# kube-controller-manager's identity; the bootstrap RBAC policy binds this user name
CONTROLLER_MANAGER_USER = "system:kube-controller-manager"

# Token use at Metadata level (who, what, with which credential id); the control plane's own chatter left out
AUDIT_POLICY = """\
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: ["RequestReceived"]
rules:
  - level: None
    users: ["system:apiserver", "system:kube-controller-manager"]
  - level: None
    userGroups: ["system:serviceaccounts:kube-system"]
  - level: None
    nonResourceURLs: ["/healthz*", "/readyz*", "/livez*", "/version"]
  - level: Metadata
"""


@dataclass(frozen=True)
class PlaneOptions:
    # --service-account-max-token-expiration; the simulator's max_token_expiration mirrors it
    max_token_expiration: str = "48h"
    # --cluster-signing-duration: the CSR signer's cap on a certificate's lifetime
    cluster_signing_duration: str = "24h"
    start_timeout: float = 90.0
    extra_apiserver_flags: tuple[str, ...] = field(default_factory=tuple)


class ControlPlane:
    """`with ControlPlane(locate(), state_dir) as plane:` — a running cluster of one apiserver."""

    def __init__(
        self, binaries: Binaries, state_dir: Path | None = None, options: PlaneOptions | None = None
    ):
        self.binaries = binaries
        self.options = options or PlaneOptions()
        self._owns_dir = state_dir is None
        self.state_dir = state_dir or Path(tempfile.mkdtemp(prefix="control-plane-"))
        self.files = PlaneFiles(self.state_dir)
        self.ca: CertificateAuthority | None = None
        self.port = 0
        self._daemons: list[Daemon] = []
        self._admin_context: ssl.SSLContext | None = None
        self._audit_reader = AuditLogReader(self.audit_log)

    # -- what tests use, the same as KubeSim's -----------------------------------------------------------------
    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def ca_pem(self) -> bytes:
        return self.files.ca_cert.read_bytes()

    @property
    def admin_kubeconfig(self) -> Path:
        return self.files.admin_kubeconfig

    @property
    def audit_log(self) -> Path:
        return self.state_dir / "audit.log"

    @property
    def issuer(self) -> str:
        return ISSUER

    @property
    def audit_events(self) -> list[AuditEvent]:
        """The requests served so far, from the audit log, in the simulator's shape."""
        return self._audit_reader.events()

    def client_cert(self, cn: str, groups: list[str] | tuple[str, ...] = ()) -> IssuedCert:
        """A client certificate of the cluster CA: user `cn` in `groups`, as kube-apiserver reads it."""
        assert self.ca is not None, "the control plane is not started"
        return self.ca.issue_client_cert(cn, list(groups))

    def write_kubeconfig(
        self,
        path: Path,
        *,
        cert: IssuedCert | None = None,
        token: str | None = None,
        namespace: str = "default",
    ) -> Path:
        if cert is None and token is None:
            raise ValueError("a kubeconfig needs a client certificate or a token")
        user = "token-user" if cert is None else "cert-user"
        return write_kubeconfig(
            path, self.url, self.ca_pem, user=user, cert=cert, token=token, namespace=namespace
        )

    # -- lifecycle -------------------------------------------------------------------------------------------
    def start(self) -> ControlPlane:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self) -> None:
        # a fresh cluster every time, even in a directory a previous run left behind
        shutil.rmtree(self.state_dir / "etcd", ignore_errors=True)
        self.audit_log.unlink(missing_ok=True)
        self.ca = write_pki(self.files)
        self.files.root.joinpath("audit-policy.yaml").write_text(AUDIT_POLICY)
        etcd_url = self._start_etcd()
        self.port = free_port()
        write_kubeconfig(
            self.files.admin_kubeconfig,
            self.url,
            self.ca_pem,
            user=ADMIN_USER,
            cert=self.client_cert(ADMIN_USER, [ADMIN_GROUP]),
        )
        write_kubeconfig(
            self.files.controller_manager_kubeconfig,
            self.url,
            self.ca_pem,
            user=CONTROLLER_MANAGER_USER,
            cert=self.client_cert(CONTROLLER_MANAGER_USER),
        )
        apiserver = self._spawn("kube-apiserver", self._apiserver_args(etcd_url))
        self._wait(apiserver, lambda: self._get("/readyz") == 200, "/readyz answered 200")
        manager = self._spawn("kube-controller-manager", self._controller_manager_args())
        # the service-account controller making `default` in `default` shows the controllers run
        self._wait(
            manager,
            lambda: self._get("/api/v1/namespaces/default/serviceaccounts/default") == 200,
            "the controller manager created the default service account",
        )

    def _start_etcd(self) -> str:
        client, peer = free_port(), free_port()
        client_url, peer_url = f"http://127.0.0.1:{client}", f"http://127.0.0.1:{peer}"
        etcd = self._spawn(
            "etcd",
            [
                str(self.binaries.etcd),
                "--name=default",
                f"--data-dir={self.state_dir / 'etcd'}",
                f"--listen-client-urls={client_url}",
                f"--advertise-client-urls={client_url}",
                f"--listen-peer-urls={peer_url}",
                f"--initial-advertise-peer-urls={peer_url}",
                f"--initial-cluster=default={peer_url}",
                "--listen-metrics-urls=",
                # a throw-away cluster: fsync buys nothing here and costs most of etcd's time on CI disks
                "--unsafe-no-fsync",
                "--log-level=warn",
            ],
        )
        self._wait(etcd, lambda: _http_ok(f"127.0.0.1:{client}", "/health"), "etcd /health answered")
        return client_url

    def _apiserver_args(self, etcd_url: str) -> list[str]:
        f = self.files
        return [
            str(self.binaries.kube_apiserver),
            f"--etcd-servers={etcd_url}",
            "--bind-address=127.0.0.1",
            "--advertise-address=127.0.0.1",
            f"--secure-port={self.port}",
            f"--tls-cert-file={f.serving_cert}",
            f"--tls-private-key-file={f.serving_key}",
            f"--client-ca-file={f.ca_cert}",
            f"--service-account-issuer={ISSUER}",
            f"--service-account-key-file={f.sa_pub}",
            f"--service-account-signing-key-file={f.sa_key}",
            f"--service-account-max-token-expiration={self.options.max_token_expiration}",
            f"--api-audiences={ISSUER}",
            "--authorization-mode=Node,RBAC",
            "--service-cluster-ip-range=10.96.0.0/16",
            f"--audit-log-path={self.audit_log}",
            f"--audit-policy-file={f.root / 'audit-policy.yaml'}",
            f"--cert-dir={f.root / 'apiserver-certs'}",
            "--profiling=false",
            *self.options.extra_apiserver_flags,
        ]

    def _controller_manager_args(self) -> list[str]:
        f = self.files
        return [
            str(self.binaries.kube_controller_manager),
            f"--kubeconfig={f.controller_manager_kubeconfig}",
            f"--authentication-kubeconfig={f.controller_manager_kubeconfig}",
            f"--authorization-kubeconfig={f.controller_manager_kubeconfig}",
            "--bind-address=127.0.0.1",
            f"--secure-port={free_port()}",
            f"--cluster-signing-cert-file={f.ca_cert}",
            f"--cluster-signing-key-file={f.ca_key}",
            f"--cluster-signing-duration={self.options.cluster_signing_duration}",
            f"--service-account-private-key-file={f.sa_key}",
            f"--root-ca-file={f.ca_cert}",
            "--use-service-account-credentials=true",
            "--controllers=*",
            "--leader-elect=false",
            f"--cert-dir={f.root / 'controller-manager-certs'}",
        ]

    def _spawn(self, name: str, args: list[str]) -> Daemon:
        daemon = Daemon(name, args, self.state_dir / f"{name}.log")
        daemon.start()
        self._daemons.append(daemon)
        return daemon

    def _wait(self, daemon: Daemon, ready: Any, what: str) -> None:
        deadline = time.monotonic() + self.options.start_timeout
        while time.monotonic() < deadline:
            if (code := daemon.exited()) is not None:
                raise ControlPlaneUnavailable(
                    f"{daemon.name} exited with {code} before {what}; its log ends:\n{daemon.tail()}"
                )
            if ready():
                return
            time.sleep(0.2)
        raise ControlPlaneUnavailable(
            f"{daemon.name}: not ready after {self.options.start_timeout:.0f} s ({what}); log:\n{daemon.tail()}"
        )

    def _admin_ssl(self) -> ssl.SSLContext:
        if self._admin_context is None:
            context = ssl.create_default_context(cadata=self.ca_pem.decode())
            cert = self.client_cert(ADMIN_USER, [ADMIN_GROUP])
            cert_file, key_file = self.state_dir / "admin.crt", self.state_dir / "admin.key"
            cert_file.write_bytes(cert.cert_pem)
            write_private(key_file, cert.key_pem)
            context.load_cert_chain(cert_file, key_file)
            self._admin_context = context
        return self._admin_context

    def _get(self, path: str) -> int:
        """The status of an admin GET, 0 when the server does not answer yet."""
        try:
            conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self._admin_ssl(), timeout=5)
            try:
                conn.request("GET", path)
                return conn.getresponse().status
            finally:
                conn.close()
        except OSError:
            return 0

    def admin_json(self, method: str, path: str, body: Any = None) -> tuple[int, Any]:
        """One admin request, synchronously (set-up outside an event loop)."""
        conn = http.client.HTTPSConnection("127.0.0.1", self.port, context=self._admin_ssl(), timeout=10)
        try:
            payload = None if body is None else json.dumps(body)
            conn.request(method, path, body=payload, headers={"Content-Type": "application/json"})
            resp = conn.getresponse()
            data = resp.read()
            return resp.status, json.loads(data) if data else None
        finally:
            conn.close()

    def stop(self) -> None:
        for daemon in reversed(self._daemons):
            daemon.stop()
        self._daemons.clear()
        if self._owns_dir:
            shutil.rmtree(self.state_dir, ignore_errors=True)

    def __enter__(self) -> ControlPlane:
        return self.start()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.stop()


def _http_ok(hostport: str, path: str) -> bool:
    try:
        conn = http.client.HTTPConnection(hostport, timeout=2)
        try:
            conn.request("GET", path)
            return conn.getresponse().status == 200
        finally:
            conn.close()
    except OSError:
        return False
