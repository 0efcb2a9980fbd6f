"""CertificateSigningRequests in the simulator: the object the server keeps, approval with kubectl, the signer's
certificate (which then authenticates against the simulator), denial, failure, the permissions approval needs,
and the signing rules as units."""

from __future__ import annotations

import asyncio
import base64
import json
import subprocess
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.x509.oid import NameOID
from kubesim_support import admin, call, client
from support.processes import kubectl

from kubesim import KubeSim, SimOptions
from kubesim.csr_signer import certificate_duration, go_subject, usage_error

CSRS = "/apis/certificates.k8s.io/v1/certificatesigningrequests"
SIGNER = "kubernetes.io/kube-apiserver-client"


def openssl_csr(tmp_path: Path, subject: str) -> tuple[bytes, Path]:
    key, csr = tmp_path / "user.key", tmp_path / "user.csr"
    subprocess.run(
        [
            *("openssl", "req", "-new", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes"),
            *("-keyout", str(key), "-out", str(csr), "-subj", subject),
        ],
        check=True,
        capture_output=True,
        timeout=30,
    )
    return csr.read_bytes(), key


def csr_body(
    name: str, request: bytes, usages: list[str] | None = None, seconds: int | None = None
) -> dict[str, Any]:
    spec: dict[str, Any] = {
        "request": base64.b64encode(request).decode(),
        "signerName": SIGNER,
        "usages": usages or ["client auth"],
    }
    if seconds is not None:
        spec["expirationSeconds"] = seconds
    return {
        "apiVersion": "certificates.k8s.io/v1",
        "kind": "CertificateSigningRequest",
        "metadata": {"name": name},
        "spec": spec,
    }


async def settled(sim: KubeSim, name: str) -> dict[str, Any]:
    """The CSR once the signer acted (certificate or Failed), polled within a bound."""
    async with client(sim) as http:
        for _ in range(200):
            _, body, _ = await call(http, "GET", f"{CSRS}/{name}")
            types = {c["type"] for c in body["status"].get("conditions") or []}
            if body["status"].get("certificate") or "Failed" in types:
                return dict(body)
            await asyncio.sleep(0.02)
    raise AssertionError(f"{name} was never signed")


def test_the_subject_is_re_encoded_as_go_does() -> None:
    name = x509.Name(
        [
            x509.NameAttribute(NameOID.COMMON_NAME, "first"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "devs"),
            x509.NameAttribute(NameOID.EMAIL_ADDRESS, "x@example.com"),
            x509.NameAttribute(NameOID.COMMON_NAME, "jürgen"),
            x509.NameAttribute(NameOID.ORGANIZATION_NAME, "qa"),
            x509.NameAttribute(NameOID.COUNTRY_NAME, "DE"),
        ]
    )
    subject = go_subject(name)
    # C, O (one multi-valued RDN), CN (the last one); the e-mail attribute is not a field pkix.Name keeps
    assert [len(rdn) for rdn in subject.rdns] == [1, 2, 1]
    assert subject.rfc4514_string() == "CN=jürgen,O=devs+O=qa,C=DE"
    kinds = [a._type.name for a in subject]
    assert kinds == ["PrintableString", "PrintableString", "PrintableString", "UTF8String"]


@pytest.mark.parametrize(
    ("requested", "expected"),
    [(None, 86400), (600, 600), (3600, 3600), (10**6, 86400)],
)
def test_the_duration_is_capped_by_the_signing_duration(requested: int | None, expected: int) -> None:
    assert certificate_duration(requested, timedelta(days=1)) == timedelta(seconds=expected)


def test_the_client_signer_accepts_only_client_usages() -> None:
    assert usage_error(["client auth", "digital signature", "key encipherment"]) is None
    assert usage_error(["client auth", "server auth"]) == "invalid usage for client certificate: server auth"
    assert usage_error(["digital signature"]) == "missing required usage for client certificate: client auth"


async def test_request_approve_with_kubectl_and_authenticate(kubesim: KubeSim, tmp_path: Path) -> None:
    request, key = openssl_csr(tmp_path, "/CN=dora/O=devs")
    async with client(kubesim, "dora", ("devs",)) as http:
        code, body, _ = await call(http, "POST", CSRS, json=csr_body("dora", request, seconds=3600))
    assert code == 403  # nobody may create CSRs without a grant
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", CSRS, json=csr_body("dora", request, seconds=3600))
    assert code == 201, body
    assert body["spec"]["username"] == "admin" and body["status"] == {}
    approved = await admin(kubesim, "certificate", "approve", "dora")
    assert approved.returncode == 0, approved.stderr
    signed = await settled(kubesim, "dora")
    pem = base64.b64decode(signed["status"]["certificate"])
    cert = x509.load_pem_x509_certificate(pem)
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(minutes=65)
    listed = await admin(kubesim, "get", "csr", "dora", "--no-headers")
    assert listed.stdout.split()[2:] == [SIGNER, "admin", "60m", "Approved,Issued"]

    cert_file = tmp_path / "dora.crt"
    cert_file.write_bytes(pem)
    config = tmp_path / "dora.kubeconfig"
    ca = base64.b64encode(kubesim.ca_pem).decode()
    config.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": kubesim.url, "certificate-authority-data": ca}}
                ],
                "users": [
                    {"name": "u", "user": {"client-certificate": str(cert_file), "client-key": str(key)}}
                ],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "c",
            }
        )
    )
    whoami = await kubectl(config, "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == "dora", whoami.stderr
    assert json.loads(whoami.stdout)["status"]["userInfo"]["groups"] == ["devs", "system:authenticated"]


async def test_denied_and_failed_requests_get_no_certificate(kubesim: KubeSim, tmp_path: Path) -> None:
    request, _ = openssl_csr(tmp_path, "/CN=eve")
    async with client(kubesim) as http:
        for name, usages in (("denied", ["client auth"]), ("server", ["server auth", "client auth"])):
            assert (await call(http, "POST", CSRS, json=csr_body(name, request, usages)))[0] == 201
    assert (await admin(kubesim, "certificate", "deny", "denied")).returncode == 0
    assert (await admin(kubesim, "certificate", "approve", "server")).returncode == 0
    failed = await settled(kubesim, "server")
    assert failed["status"]["conditions"][-1] | {"lastUpdateTime": "", "lastTransitionTime": ""} == {
        "type": "Failed",
        "status": "True",
        "reason": "SignerValidationFailure",
        "message": "invalid usage for client certificate: server auth",
        "lastUpdateTime": "",
        "lastTransitionTime": "",
    }
    async with client(kubesim) as http:
        _, denied, _ = await call(http, "GET", f"{CSRS}/denied")
    assert "certificate" not in denied["status"]
    assert [c["type"] for c in denied["status"]["conditions"]] == ["Denied"]


async def test_approval_needs_approve_on_the_signer(kubesim: KubeSim, tmp_path: Path) -> None:
    request, _ = openssl_csr(tmp_path, "/CN=fay")
    for args in (
        (
            "create",
            "clusterrole",
            "approver",
            "--verb=update",
            "--resource=certificatesigningrequests/approval",
        ),
        ("create", "clusterrolebinding", "approver", "--clusterrole=approver", "--user=gus"),
    ):
        assert (await admin(kubesim, *args)).returncode == 0
    async with client(kubesim) as http:
        _, csr, _ = await call(http, "POST", CSRS, json=csr_body("fay", request))
    csr["status"] = {"conditions": [{"type": "Approved", "status": "True", "reason": "R", "message": "m"}]}
    async with client(kubesim, "gus", ()) as http:
        code, body, _ = await call(http, "PUT", f"{CSRS}/fay/approval", json=csr)
    assert (code, body["message"]) == (
        403,
        'certificatesigningrequests.certificates.k8s.io "fay" is forbidden: user not permitted to approve '
        f'requests with signerName "{SIGNER}"',
    )
    # `signers` is no resource a server serves (kubectl create clusterrole would refuse it): by REST
    signer_role = {
        "metadata": {"name": "signer"},
        "rules": [
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["signers"],
                "verbs": ["approve"],
                "resourceNames": [SIGNER],
            }
        ],
    }
    async with client(kubesim) as http:
        assert (
            await call(http, "POST", "/apis/rbac.authorization.k8s.io/v1/clusterroles", json=signer_role)
        )[0] == 201
    bound = await admin(
        kubesim, "create", "clusterrolebinding", "signer", "--clusterrole=signer", "--user=gus"
    )
    assert bound.returncode == 0, bound.stderr
    async with client(kubesim, "gus", ()) as http:
        code, body, _ = await call(http, "PUT", f"{CSRS}/fay/approval", json=csr)
    assert code == 200, body
    assert body["status"]["conditions"][0]["lastTransitionTime"]


async def test_system_masters_and_bad_requests_are_refused(kubesim: KubeSim, tmp_path: Path) -> None:
    masters, _ = openssl_csr(tmp_path, "/CN=root/O=system:masters")
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", CSRS, json=csr_body("root", masters))
        bad, invalid, _ = await call(http, "POST", CSRS, json=csr_body("bad", b"nope", seconds=60))
    assert (code, body["message"]) == (
        403,
        'certificatesigningrequests.certificates.k8s.io "root" is forbidden: use of '
        f"{SIGNER} signer with system:masters group is not allowed",
    )
    assert bad == 422
    assert invalid["message"] == (
        'CertificateSigningRequest.certificates.k8s.io "bad" is invalid: [spec.request: Invalid value: "bm9wZQ==": '
        "PEM block type must be CERTIFICATE REQUEST, spec.expirationSeconds: Invalid value: 60: may not specify a "
        "duration less than 600 seconds (10 minutes)]"
    )


async def test_the_signing_duration_is_an_option(tmp_path: Path) -> None:
    request, _ = openssl_csr(tmp_path, "/CN=hal")
    async with KubeSim(SimOptions(cluster_signing_duration=3600), state_dir=tmp_path / "sim") as sim:
        async with client(sim) as http:
            assert (await call(http, "POST", CSRS, json=csr_body("hal", request)))[0] == 201
        assert (await admin(sim, "certificate", "approve", "hal")).returncode == 0
        signed = await settled(sim, "hal")
    cert = x509.load_pem_x509_certificate(base64.b64decode(signed["status"]["certificate"]))
    # below 8 hours the end is not backdated: 1 h from now, 5 minutes before now to begin
    assert cert.not_valid_after_utc - cert.not_valid_before_utc == timedelta(minutes=65)
