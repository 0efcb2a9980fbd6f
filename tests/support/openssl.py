"""Certificates made with the `openssl` command, the way an administrator makes them by hand today."""

from __future__ import annotations

import subprocess
from pathlib import Path
from typing import Literal

_NEW_KEY = {
    "rsa": ("genrsa", "-out", "{key}", "2048"),
    "ec": ("ecparam", "-name", "prime256v1", "-genkey", "-noout", "-out", "{key}"),
}


def openssl(*args: str, cwd: Path | None = None) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def make_ca(directory: Path, stem: str = "ca", subject: str = "/CN=test-ca") -> tuple[Path, Path]:
    """A self-signed CA: (certificate, key)."""
    crt, key = directory / f"{stem}.crt", directory / f"{stem}.key"
    openssl("genrsa", "-out", str(key), "2048")
    openssl("req", "-x509", "-new", "-key", str(key), "-subj", subject, "-days", "1", "-out", str(crt))
    return crt, key


def client_cert(
    directory: Path,
    ca_cert: Path,
    ca_key: Path,
    subject: str,
    stem: str = "u",
    key_type: Literal["rsa", "ec"] = "rsa",
) -> tuple[Path, Path]:
    """The manual flow for a kube-apiserver user: a key, `req -subj "/CN=…/O=…"`, `x509 -req -CA`: (cert, key)."""
    key, csr, crt = directory / f"{stem}.key", directory / f"{stem}.csr", directory / f"{stem}.crt"
    openssl(*(arg.format(key=key) for arg in _NEW_KEY[key_type]))
    openssl("req", "-new", "-key", str(key), "-subj", subject, "-out", str(csr))
    openssl(
        "x509", "-req", "-in", str(csr), "-CA", str(ca_cert), "-CAkey", str(ca_key), "-CAcreateserial",
        "-out", str(crt), "-days", "1",
    )  # fmt: skip
    return crt, key
