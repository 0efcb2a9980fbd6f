"""The broker's TLS material and its callers: a serving certificate, a client CA, and one client certificate
per caller (CN=user, O=groups, as kube-apiserver reads them)."""

from __future__ import annotations

import ssl
from collections.abc import Sequence
from pathlib import Path

from broker._kits.pki import CertificateAuthority, write_private

from .names import GROUP


def client_context(ca_pem: bytes, cert: Path | None = None, key: Path | None = None) -> ssl.SSLContext:
    """Trusts `ca_pem`; presents the certificate when given."""
    context = ssl.create_default_context(cadata=ca_pem.decode())
    if cert is not None:
        context.load_cert_chain(str(cert), str(key) if key else None)
    return context


class Pki:
    """The broker's serving certificate and client CA, and caller certificates (CN=user, O=groups)."""

    def __init__(self, root: Path) -> None:
        self.root = root
        tls = root / "tls"
        tls.mkdir(parents=True, exist_ok=True)
        server_ca = CertificateAuthority.generate("bench server CA")
        serving = server_ca.issue_server_cert(["127.0.0.1", "localhost"])
        self._server_ca_pem = server_ca.cert_pem
        self.server_ca, self.server_cert, self.server_key = (
            tls / "server-ca.crt",
            tls / "server.crt",
            tls / "server.key",
        )
        self.server_ca.write_bytes(server_ca.cert_pem)
        self.server_cert.write_bytes(serving.cert_pem)
        write_private(self.server_key, serving.key_pem)
        self._client_ca = CertificateAuthority.generate("bench client CA")
        self.client_ca_file = tls / "client-ca.crt"
        self.client_ca_file.write_bytes(self._client_ca.cert_pem)
        self._callers: dict[str, tuple[Path, Path]] = {}

    def caller(self, user: str, groups: Sequence[str] = (GROUP,)) -> tuple[Path, Path]:
        found = self._callers.get(user)
        if found is None:
            issued = self._client_ca.issue_client_cert(user, list(groups), days=2)
            cert, key = self.root / "callers" / f"{user}.crt", self.root / "callers" / f"{user}.key"
            cert.parent.mkdir(parents=True, exist_ok=True)
            cert.write_bytes(issued.cert_pem)
            write_private(key, issued.key_pem)
            found = self._callers[user] = (cert, key)
        return found

    def caller_ssl(self, user: str) -> ssl.SSLContext:
        return client_context(self._server_ca_pem, *self.caller(user))
