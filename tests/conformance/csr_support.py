"""CertificateSigningRequests for the conformance tests: requests made with the `openssl` command, the CSR object,
waiting (bounded) for the signer, and the fields of an issued certificate the two servers must agree on."""

from __future__ import annotations

import asyncio
import base64
import re
import subprocess
from pathlib import Path
from typing import Any

from conformance_support import Peer
from cryptography import x509
from cryptography.hazmat.primitives import serialization

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
CLIENT_SIGNER = "kubernetes.io/kube-apiserver-client"
_CREDENTIAL_ID = re.compile(r"X509SHA256=[0-9a-f]{64}")


def openssl_csr(workdir: Path, subject: str, *, key: str = "ec", sans: str = "") -> tuple[bytes, Path]:
    """A PEM certificate request and its key file, made by `openssl req` (EC P-256 or RSA 2048)."""
    workdir.mkdir(parents=True, exist_ok=True)
    key_file, csr_file = workdir / "client.key", workdir / "client.csr"
    new_key = (
        ["-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256"] if key == "ec" else ["-newkey", "rsa:2048"]
    )
    command = ["openssl", "req", "-new", *new_key, "-nodes", "-keyout", str(key_file), "-out", str(csr_file)]
    command += ["-subj", subject, "-utf8"]
    if sans:
        command += ["-addext", f"subjectAltName={sans}"]
    subprocess.run(command, check=True, capture_output=True, timeout=30)
    return csr_file.read_bytes(), key_file


def csr_object(
    name: str,
    request: bytes,
    *,
    usages: list[str] | None = None,
    expiration: int | None = None,
    signer: str = CLIENT_SIGNER,
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "request": base64.b64encode(request).decode(),
        "signerName": signer,
        "usages": ["client auth"] if usages is None else usages,
    }
    if expiration is not None:
        spec["expirationSeconds"] = expiration
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": spec,
    }


def condition(kind: str, reason: str = "ConformanceTest", message: str = "by the test") -> dict[str, str]:
    return {"type": kind, "status": "True", "reason": reason, "message": message}


def with_conditions(csr: dict[str, Any], *conditions: dict[str, str]) -> dict[str, Any]:
    return {**csr, "status": {**(csr.get("status") or {}), "conditions": list(conditions)}}


async def settled(peer: Peer, name: str, *, timeout: float = 30.0) -> dict[str, Any]:
    """The CSR once the signer has acted on it (a certificate or a Failed condition), within a bound."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        answer = await peer.call("GET", f"{CSRS}/{name}")
        assert answer.status == 200, answer.body
        status = answer.body.get("status") or {}
        kinds = {c["type"] for c in status.get("conditions") or []}
        if status.get("certificate") or "Failed" in kinds:
            return dict(answer.body)
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"{peer.name}: {name} was never signed nor failed: {status}")
        await asyncio.sleep(0.1)


def summary(csr: dict[str, Any]) -> str:
    """The condition types of a CSR, then Issued once it has a certificate (what a watcher waits for)."""
    status = csr.get("status") or {}
    parts = [c["type"] for c in status.get("conditions") or []]
    return ",".join(parts + (["Issued"] if status.get("certificate") else []))


def without_certificate(body: Any) -> Any:
    """The answer with status.certificate (different on each server) replaced, and the x509 credential ids."""
    if isinstance(body, dict):
        return {
            k: ("<certificate>" if k == "certificate" and v else without_certificate(v))
            for k, v in body.items()
        }
    if isinstance(body, list):
        return [without_certificate(v) for v in body]
    if isinstance(body, str):
        return _CREDENTIAL_ID.sub("X509SHA256=<fingerprint>", body)
    return body


def issued(answer_body: dict[str, Any]) -> x509.Certificate:
    return x509.load_pem_x509_certificate(base64.b64decode(answer_body["status"]["certificate"]))


def certificate_fields(cert: x509.Certificate, ca_pem: bytes, request: bytes) -> dict[str, Any]:
    """What must be equal between the servers' certificates for the same request (the issuer's own values
    checked against each server's CA)."""
    ca = x509.load_pem_x509_certificate(ca_pem)
    csr = x509.load_pem_x509_csr(request)
    ca_key_id = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value.digest
    extensions = []
    for ext in cert.extensions:
        value: Any = ext.value.public_bytes()
        if isinstance(ext.value, x509.AuthorityKeyIdentifier):
            value = "<the CA's key id>" if ext.value.key_identifier == ca_key_id else value
        extensions.append((ext.oid.dotted_string, ext.critical, value))
    spki = serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    return {
        "version": cert.version.name,
        "subject (DER)": cert.subject.public_bytes(),
        "subject": cert.subject.rfc4514_string(),
        "issuer is the CA": cert.issuer == ca.subject,
        "signed by the CA": _verifies(cert, ca),
        "validity": cert.not_valid_after_utc - cert.not_valid_before_utc,
        "serial bits <= 128": 0 < cert.serial_number < 1 << 128,
        "signature algorithm": cert.signature_algorithm_oid.dotted_string,
        "key is the request's": cert.public_key().public_bytes(*spki) == csr.public_key().public_bytes(*spki),
        "extensions": extensions,
    }


def _verifies(cert: x509.Certificate, ca: x509.Certificate) -> bool:
    try:
        cert.verify_directly_issued_by(ca)
    except Exception:  # InvalidSignature, or a key type that does not match
        return False
    return True
