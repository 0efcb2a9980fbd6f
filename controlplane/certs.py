"""The files a kubeadm-made cluster keeps under /etc/kubernetes/pki, made for one throw-away control plane: one CA
(serving, client certificates and the CSR signer, as kubeadm's `ca`), the apiserver's serving certificate, the
service-account key pair, and kubeconfigs for the admin and the controller manager."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from broker._kits.pki import CertificateAuthority, IssuedCert, write_private
from kubesim import kubeconfig

# the names a pod reaches the API server by, and loopback, where the tests reach it
SERVING_HOSTS = [
    "127.0.0.1",
    "localhost",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
    "10.96.0.1",
]


@dataclass(frozen=True)
class PlaneFiles:
    root: Path

    @property
    def ca_cert(self) -> Path:
        return self.root / "ca.crt"

    @property
    def ca_key(self) -> Path:
        return self.root / "ca.key"

    @property
    def serving_cert(self) -> Path:
        return self.root / "apiserver.crt"

    @property
    def serving_key(self) -> Path:
        return self.root / "apiserver.key"

    @property
    def sa_key(self) -> Path:
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        return self.root / "sa.pub"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def controller_manager_kubeconfig(self) -> Path:
        return self.root / "controller-manager.kubeconfig"


def write_pki(files: PlaneFiles) -> CertificateAuthority:
    files.root.mkdir(parents=True, exist_ok=True)
    ca = CertificateAuthority.generate("kubernetes")
    files.ca_cert.write_bytes(ca.cert_pem)
    write_private(files.ca_key, ca.key_pem)
    serving = ca.issue_server_cert(SERVING_HOSTS)
    files.serving_cert.write_bytes(serving.cert_pem)
    write_private(files.serving_key, serving.key_pem)
    # RSA, so tokens are RS256 as on most clusters
    sa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    write_private(
        files.sa_key,
        sa.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ),
    )
    files.sa_pub.write_bytes(
        sa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    return ca


def write_kubeconfig(
    path: Path,
    server: str,
    ca_pem: bytes,
    *,
    user: str,
    cert: IssuedCert | None = None,
    token: str | None = None,
    namespace: str = "default",
) -> Path:
    config = kubeconfig.build(server, ca_pem, user=user, cert=cert, token=token, namespace=namespace)
    return kubeconfig.write(path, config)
