"""Client certificates read like kube-apiserver reads them: CN = user, each O = a group."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding
from support.openssl import client_cert, make_ca

from broker._kits.pki import CertificateAuthority
from broker.callers import CallerRequest, MtlsAuthenticator
from broker.domain.errors import BrokerError
from broker.domain.identity import Caller


def user_cert(directory: Path, subject: str, stem: str = "u") -> Path:
    return client_cert(directory, directory / "ca.crt", directory / "ca.key", subject, stem)[0]


def der_of(pem_path: Path) -> bytes:
    return x509.load_pem_x509_certificate(pem_path.read_bytes()).public_bytes(Encoding.DER)


@pytest.fixture(scope="module")
def openssl_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    directory = tmp_path_factory.mktemp("openssl")
    make_ca(directory)
    return directory


async def test_broker_pki_certificate() -> None:
    ca = CertificateAuthority.generate("test-ca")
    issued = ca.issue_client_cert("jenkins", ["ci", "deployers"])
    request = CallerRequest(peer_cert_der=issued.cert.public_bytes(Encoding.DER))
    caller = await MtlsAuthenticator().authenticate(request)
    assert caller == Caller(user="jenkins", groups=("ci", "deployers"), method="mtls")


async def test_openssl_certificate_from_the_manual_flow(openssl_dir: Path) -> None:
    cert = user_cert(openssl_dir, "/CN=jenkins/O=ci")
    caller = await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=der_of(cert)))
    assert caller == Caller(user="jenkins", groups=("ci",), method="mtls")


async def test_openssl_certificate_with_several_organizations(openssl_dir: Path) -> None:
    cert = user_cert(openssl_dir, "/CN=alice/O=ci/O=system:masters/O=team a", stem="multi")
    caller = await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=der_of(cert)))
    assert caller is not None
    assert caller.user == "alice"
    # kube-apiserver keeps the subject's order of O values
    assert caller.groups == ("ci", "system:masters", "team a")


async def test_certificate_without_organization_has_no_groups(openssl_dir: Path) -> None:
    cert = user_cert(openssl_dir, "/CN=robot", stem="nogroups")
    caller = await MtlsAuthenticator().authenticate(CallerRequest(peer_cert_der=der_of(cert)))
    assert caller == Caller(user="robot", groups=(), method="mtls")


async def test_certificate_without_common_name_is_refused(openssl_dir: Path) -> None:
    cert = user_cert(openssl_dir, "/O=ci", stem="nocn")
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
