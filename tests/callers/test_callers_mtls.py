"""Client certificates read like kube-apiserver reads them: CN = user, each O = a group."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

from broker._kits.pki import CertificateAuthority
from broker.callers import CallerRequest, MtlsAuthenticator
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def openssl_ca(directory: Path) -> None:
    openssl("genrsa", "-out", "ca.key", "2048", cwd=directory)
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ca.key",
        "-subj",
        "/CN=test-ca",
        "-days",
        "1",
        "-out",
        "ca.crt",
        cwd=directory,
    )


def openssl_client_cert(directory: Path, subject: str, stem: str = "u") -> Path:
    """The manual flow an administrator follows for a kube-apiserver user."""
    openssl("genrsa", "-out", f"{stem}.key", "2048", cwd=directory)
    openssl("req", "-new", "-key", f"{stem}.key", "-subj", subject, "-out", f"{stem}.csr", cwd=directory)
    openssl(
        "x509", "-req", "-in", f"{stem}.csr", "-CA", "ca.crt", "-CAkey", "ca.key", "-CAcreateserial",
        "-out", f"{stem}.crt", "-days", "1",
        cwd=directory,
    )  # fmt: skip
    return directory / f"{stem}.crt"


def der_of(pem_path: Path) -> bytes:
    return x509.load_pem_x509_certificate(pem_path.read_bytes()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def openssl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("openssl")
    openssl_ca(directory)
    return directory


async def test_broker_pki_certificate() -> None:
    ca = CertificateAuthority.generate("test-ca")
    issued = ca.issue_client_cert("jenkins", ["ci", "deployers"])
    request = CallerRequest(peer_cert_der=issued.cert.public_bytes(Encoding.DER))
    caller = await MtlsAuthenticator().authenticate(request)
    assert caller == Caller(user="jenkins", groups=("ci", "deployers"), method="mtls")


async def test_openssl_certificate_from_the_manual_flow(openssl_dir: Path) -> None:
    cert = openssl_client_cert(openssl_dir, "/CN=jenkins/O=ci")
    caller = await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=der_of(cert)))
    assert caller == Caller(user="jenkins", groups=("ci",), method="mtls")


async def test_openssl_certificate_with_several_organizations(openssl_dir: Path) -> None:
    cert = openssl_client_cert(openssl_dir, "/CN=alice/O=ci/O=system:masters/O=team a", stem="multi")
    caller = await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=der_of(cert)))
    assert caller is not None
    assert caller.user == "alice"
    # kube-apiserver keeps the subject's order of O values
    assert caller.groups == ("ci", "system:masters", "team a")


async def test_certificate_without_organization_has_no_groups(openssl_dir: Path) -> None:
    cert = openssl_client_cert(openssl_dir, "/CN=robot", stem="nogroups")
    caller = await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=der_of(cert)))
    assert caller == Caller(user="robot", groups=(), method="mtls")


async def test_certificate_without_common_name_is_refused(openssl_dir: Path) -> None:
    cert = openssl_client_cert(openssl_dir, "/O=ci", stem="nocn")
    with pytest.raises(BrokerError) as info:
        await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=der_of(cert)))
    assert info.value.status == 401
    assert "common name" in info.value.detail


async def test_no_certificate_is_not_this_authenticators_business() -> None:
    assert await MtlsAuthenticator().authenticate(CallerRequest(headers={"X-API-Key": "k"})) is None


async def test_unreadable_certificate_is_refused() -> None:
    with pytest.raises(BrokerError) as info:
        await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=b"\x30\x03not a certificate"))
    assert info.value.status == 401
