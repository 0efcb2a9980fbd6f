"""Certificates made exactly as the seed's manual flow makes them, with the `openssl` command: a CA from
`openssl req -x509 -newkey rsa:2048 -nodes` (no keyUsage extension: what Python 3.13's default context refuses),
keys from `openssl genrsa`, requests from `openssl req -new -subj "/CN=…/O=…"`, signatures from
`openssl x509 -req -CA … -CAkey …`. Server certificates add a subjectAltName (kubectl and Python both need one)."""

from __future__ import annotations

import subprocess
from dataclasses import dataclass
from pathlib import Path


def openssl(*args: str) -> None:
    subprocess.run(["openssl", *args], check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class SeedCa:
    cert: Path
    key: Path

    @classmethod
    def make(cls, directory: Path, name: str) -> SeedCa:
        directory.mkdir(parents=True, exist_ok=True)
        cert, key = directory / f"{name}.crt", directory / f"{name}.key"
        openssl(
            "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
            "-days", "2", "-subj", f"/CN={name}",
        )  # fmt: skip
        return cls(cert, key)

    def sign(self, directory: Path, name: str, subject: str, *, san: str | None = None) -> tuple[Path, Path]:
        """(certificate, key) for `subject` ("/CN=jenkins/O=ci"); `san` ("IP:127.0.0.1") for a server."""
        key, csr, cert = (directory / f"{name}.{ext}" for ext in ("key", "csr", "crt"))
        openssl("genrsa", "-out", str(key), "2048")
        openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
        extra: list[str] = []
        if san is not None:
            ext = directory / f"{name}.ext"
            ext.write_text(f"subjectAltName={san}\n")
            extra = ["-extfile", str(ext)]
        openssl(
            "x509", "-req", "-in", str(csr), "-CA", str(self.cert), "-CAkey", str(self.key),
            "-CAcreateserial", "-out", str(cert), "-days", "1", *extra,
        )  # fmt: skip
        return cert, key


@dataclass(frozen=True)
class SeedPki:
    """One CA for the cluster, one for the broker (its serving certificate and its callers)."""

    cluster_ca: SeedCa
    broker_ca: SeedCa
    broker_cert: Path
    broker_key: Path
    caller_cert: Path
    caller_key: Path

    @classmethod
    def make(cls, directory: Path) -> SeedPki:
        cluster_ca = SeedCa.make(directory, "cluster-ca")
        broker_ca = SeedCa.make(directory, "broker-ca")
        broker_cert, broker_key = broker_ca.sign(
            directory, "broker", "/CN=127.0.0.1", san="IP:127.0.0.1,DNS:localhost"
        )
        caller_cert, caller_key = broker_ca.sign(directory, "jenkins", "/CN=jenkins/O=ci")
        return cls(cluster_ca, broker_ca, broker_cert, broker_key, caller_cert, caller_key)
