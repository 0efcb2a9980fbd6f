"""The CertificateSigningRequest API and the kube-apiserver-client signer: the same request (made with openssl)
created, approved and signed on both servers; the CSR objects, their conditions and the issued certificates'
fields compared, and the refusals of bad requests and of requesters without the permissions."""

from __future__ import annotations

import asyncio
import base64
import json
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from conformance_support import ADMIN, Answer, Pair, assert_same, status_of
from csr_support import (
    CLIENT_SIGNER,
    CSRS,
    certificate_fields,
    condition,
    csr_object,
    issued,
    openssl_csr,
    settled,
    summary,
    with_conditions,
    without_certificate,
)

RBAC = "/apis/rbac.authorization.k8s.io/v1"
GROUP = "rbac.authorization.k8s.io"
CSR_RULE = {
    "apiGroups": ["certificates.k8s.io"],
    "resources": ["certificatesigningrequests"],
    "verbs": ["create", "get", "list", "watch", "delete", "update"],
}
APPROVAL_RULE = {
    "apiGroups": ["certificates.k8s.io"],
    "resources": ["certificatesigningrequests/approval"],
    "verbs": ["update"],
}


class Scene:
    """The requester (may create and read CSRs) and this test's cluster-scoped names."""

    def __init__(self, pair: Pair, workdir: Path) -> None:
        self.pair = pair
        self.workdir = workdir
        self.user = (f"u-{pair.namespace}", ("devs", "qa"))

    def name(self, suffix: str) -> str:
        return f"{self.pair.namespace}-{suffix}"

    async def grant(self, suffix: str, rules: list[dict[str, Any]], user: str) -> None:
        role = self.name(suffix)
        await self.pair.setup("POST", f"{RBAC}/clusterroles", {"metadata": {"name": role}, "rules": rules})
        binding = {
            "metadata": {"name": role},
            "roleRef": {"apiGroup": GROUP, "kind": "ClusterRole", "name": role},
            "subjects": [{"apiGroup": GROUP, "kind": "User", "name": user}],
        }
        await self.pair.setup("POST", f"{RBAC}/clusterrolebindings", binding)

    async def create(self, body: dict[str, Any]) -> tuple[Answer, Answer]:
        return await self.pair.both("POST", CSRS, body, user=self.user)

    async def created(self, body: dict[str, Any]) -> tuple[Answer, Answer]:
        sim, real = await self.create(body)
        assert (sim.status, real.status) == (201, 201), (sim.body, real.body)
        return sim, real

    async def approve(self, name: str, *, user: tuple[str, tuple[str, ...]] = ADMIN) -> tuple[Answer, Answer]:
        answers = []
        for peer in self.pair.peers:
            current = (await peer.call("GET", f"{CSRS}/{name}")).body
            body = with_conditions(current, condition("Approved"))
            answers.append(await peer.call("PUT", f"{CSRS}/{name}/approval", body, user=user))
        return answers[0], answers[1]


@pytest.fixture
async def scene(pair: Pair, tmp_path: Path) -> Scene:
    scene = Scene(pair, tmp_path)
    await scene.grant("csr-maker", [CSR_RULE], scene.user[0])
    return scene


def same(sim: Answer, real: Answer, what: str = "") -> None:
    assert sim.status == real.status, f"{what}: sim {sim.status} {sim.body}\nreal {real.status} {real.body}"
    if real.status >= 400:
        assert_same(status_of(sim), status_of(real), what=what)
    else:
        assert_same(without_certificate(sim.body), without_certificate(real.body), what=what)


async def signed_on_both(scene: Scene, body: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    await scene.created(body)
    name = body["metadata"]["name"]
    sim, real = await scene.approve(name)
    same(sim, real, "the approval")
    return await settled(scene.pair.sim, name), await settled(scene.pair.real, name)


def assert_same_certificates(scene: Scene, sim: dict[str, Any], real: dict[str, Any], request: bytes) -> None:
    assert_same(without_certificate(sim), without_certificate(real), what="the signed CSR")
    fields = [
        certificate_fields(issued(body), peer.cluster.ca_pem, request)
        for peer, body in zip(scene.pair.peers, (sim, real), strict=True)
    ]
    assert fields[0] == fields[1]
    assert (
        fields[1]["issuer is the CA"] and fields[1]["signed by the CA"] and fields[1]["key is the request's"]
    )


async def test_create_stamps_the_requester_and_clears_status(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice/O=devs")
    body = csr_object(scene.name("a"), request, usages=["client auth", "digital signature"], expiration=3600)
    body["spec"] |= {"username": "mallory", "groups": ["system:masters"], "uid": "forged"}
    body["status"] = {"conditions": [condition("Approved")]}
    sim, real = await scene.create(body)
    same(sim, real)
    assert real.body["spec"]["username"] == scene.user[0]
    assert real.body["status"] == {}


@pytest.mark.parametrize(
    "expiration", [None, 600, 3600, 8 * 3600 - 1, 8 * 3600, 48 * 3600], ids=lambda e: f"expiration-{e}"
)
async def test_the_signer_honours_and_caps_the_duration(scene: Scene, expiration: int | None) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice/O=devs/O=qa")
    body = csr_object(scene.name("d"), request, expiration=expiration)
    sim, real = await signed_on_both(scene, body)
    assert_same_certificates(scene, sim, real, request)
    validity = certificate_fields(issued(real), scene.pair.real.cluster.ca_pem, request)["validity"]
    # 5 minutes backdated; a duration of 8 h or more ends 5 minutes early; 24 h (--cluster-signing-duration) at most
    expected = {None: 24 * 3600, 600: 900, 3600: 3900, 8 * 3600 - 1: 8 * 3600 + 299, 8 * 3600: 8 * 3600}
    assert validity == timedelta(seconds=expected.get(expiration, 24 * 3600))


SUBJECTS = {
    "cn-only": ("/CN=robot", "ec", ""),
    "groups-and-ou": ("/C=DE/ST=Berlin/L=Berlin/O=devs/O=qa/OU=ci/CN=jenkins", "ec", ""),
    "dropped-attributes": ("/CN=carol/emailAddress=carol@example.com/DC=example/O=ops", "ec", ""),
    "utf8-and-star": ("/CN=jürgen*/O=ops&dev", "rsa", ""),
    "sans": ("/CN=svc", "ec", "DNS:svc.example.com,IP:10.0.0.1,email:svc@example.com,URI:spiffe://x/y"),
    "system-name": ("/CN=system:node:worker-1/O=system:nodes", "ec", ""),
    "empty-subject-with-sans": ("/", "ec", "DNS:only.example.com"),
}


@pytest.mark.parametrize("case", list(SUBJECTS.values()), ids=list(SUBJECTS))
async def test_what_the_certificate_copies_from_the_request(scene: Scene, case: tuple[str, str, str]) -> None:
    subject, key, sans = case
    request, _ = openssl_csr(scene.workdir, subject, key=key, sans=sans)
    usages = ["digital signature", "key encipherment", "client auth"]
    sim, real = await signed_on_both(scene, csr_object(scene.name("s"), request, usages=usages))
    assert_same_certificates(scene, sim, real, request)


@pytest.mark.parametrize(
    "usages",
    [
        ["client auth"],
        ["client auth", "digital signature"],
        ["server auth", "client auth"],
        ["digital signature"],
    ],
    ids=["client-auth", "with-digital-signature", "server-auth", "no-client-auth"],
)
async def test_usages_the_signer_accepts_or_fails(scene: Scene, usages: list[str]) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    sim, real = await signed_on_both(scene, csr_object(scene.name("u"), request, usages=usages))
    if "certificate" in real["status"]:
        assert_same_certificates(scene, sim, real, request)
    else:
        assert_same(without_certificate(sim), without_certificate(real), what="the failed CSR")
        assert real["status"]["conditions"][-1]["reason"] == "SignerValidationFailure"


async def test_system_masters_is_refused(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=root/O=devs/O=system:masters")
    sim, real = await scene.create(csr_object(scene.name("m"), request))
    same(sim, real)
    assert real.status == 403


def _broken_signature(workdir: Path) -> bytes:
    pem, _ = openssl_csr(workdir, "/CN=alice")
    der = bytearray(base64.b64decode(b"".join(pem.splitlines()[1:-1])))
    der[-3] ^= 0x01
    body = base64.encodebytes(bytes(der)).replace(b"\n", b"")
    lines = [body[i : i + 64] for i in range(0, len(body), 64)]
    return (
        b"-----BEGIN CERTIFICATE REQUEST-----\n"
        + b"\n".join(lines)
        + b"\n-----END CERTIFICATE REQUEST-----\n"
    )


BAD_REQUESTS: dict[str, dict[str, Any]] = {
    "not-pem": {"request": base64.b64encode(b"not a csr").decode()},
    "another-pem-block": {
        "request": base64.b64encode(
            b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"
        ).decode()
    },
    "no-request": {"request": None},
    "no-usages-no-signer": {"usages": [], "signerName": ""},
    "unknown-and-duplicate-usages": {"usages": ["client auth", "foo", "client auth"]},
    "short-expiration": {"expirationSeconds": 599},
    "legacy-signer": {"signerName": "kubernetes.io/legacy-unknown"},
    "signer-without-path": {"signerName": "kubernetes.io"},
    "signer-bad-domain": {"signerName": "Bad_Domain/x"},
    "signer-bad-path": {"signerName": "example.com/Upper"},
    "signer-two-slashes": {"signerName": "example.com/a/b"},
}


@pytest.mark.parametrize("change", list(BAD_REQUESTS.values()), ids=list(BAD_REQUESTS))
async def test_bad_requests_are_invalid(scene: Scene, change: dict[str, Any]) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    body = csr_object(scene.name("bad"), request)
    body["spec"] |= change
    body["spec"] = {k: v for k, v in body["spec"].items() if v is not None}
    sim, real = await scene.create(body)
    same(sim, real)
    assert real.status == 422


async def test_a_request_whose_signature_does_not_verify(scene: Scene) -> None:
    sim, real = await scene.create(csr_object(scene.name("sig"), _broken_signature(scene.workdir)))
    same(sim, real)
    assert real.status == 422


async def test_any_name_is_allowed(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    sim, real = await scene.create(csr_object(scene.name("Upper_Case:colon"), request))
    same(sim, real)


@pytest.mark.parametrize(
    "grant", ["nothing", "approval-only", "signer-by-name", "signer-domain", "other-signer"]
)
async def test_approval_needs_update_on_approval_and_approve_on_the_signer(scene: Scene, grant: str) -> None:
    approver = scene.name("approver")
    signers = {
        "signer-by-name": [CLIENT_SIGNER],
        "signer-domain": ["kubernetes.io/*"],
        "other-signer": ["kubernetes.io/kubelet-serving"],
    }
    rules: list[dict[str, Any]] = [CSR_RULE]
    if grant != "nothing":
        rules.append(APPROVAL_RULE)
    if grant in signers:
        rules.append(
            {
                "apiGroups": ["certificates.k8s.io"],
                "resources": ["signers"],
                "verbs": ["approve"],
                "resourceNames": signers[grant],
            }
        )
    await scene.grant("approve", rules, approver)
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    name = scene.name("p")
    await scene.created(csr_object(name, request))
    sim, real = await scene.approve(name, user=(approver, ()))
    same(sim, real)
    assert real.status == (200 if grant in ("signer-by-name", "signer-domain") else 403)


async def test_approved_and_denied_together_is_invalid_and_denied_alone_is_kept(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    name = scene.name("deny")
    await scene.created(csr_object(name, request))
    answers = []
    for conditions in ((condition("Approved"), condition("Denied")), (condition("Denied", "Nope", "no"),)):
        for peer in scene.pair.peers:
            current = (await peer.call("GET", f"{CSRS}/{name}")).body
            answers.append(
                await peer.call("PUT", f"{CSRS}/{name}/approval", with_conditions(current, *conditions))
            )
    same(answers[0], answers[1], "Approved and Denied")
    same(answers[2], answers[3], "Denied")
    assert (answers[1].status, answers[3].status) == (422, 200)


async def test_approvals_cannot_be_removed_or_added_through_status(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    name = scene.name("st")
    sim, real = await signed_on_both(scene, csr_object(name, request))
    answers = []
    for peer, current in zip(scene.pair.peers, (sim, real), strict=True):
        removed = with_conditions(current)
        answers.append(await peer.call("PUT", f"{CSRS}/{name}/approval", removed))
        answers.append(
            await peer.call(
                "PUT",
                f"{CSRS}/{name}/status",
                with_conditions(current, *current["status"]["conditions"], condition("Denied")),
            )
        )
    same(answers[0], answers[2], "removing the approval")
    same(answers[1], answers[3], "adding Denied through status")


async def test_status_needs_sign_on_the_signer(scene: Scene) -> None:
    writer = scene.name("writer")
    status_rule = {**APPROVAL_RULE, "resources": ["certificatesigningrequests/status"]}
    await scene.grant("status", [CSR_RULE, status_rule], writer)
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    name = scene.name("sg")
    await scene.created(csr_object(name, request))
    answers = []
    for peer in scene.pair.peers:
        current = (await peer.call("GET", f"{CSRS}/{name}")).body
        failed = with_conditions(current, {"type": "Failed", "status": "True", "reason": "X", "message": "y"})
        answers.append(await peer.call("PUT", f"{CSRS}/{name}/status", failed, user=(writer, ())))
        unchanged = await peer.call("PUT", f"{CSRS}/{name}/status", current, user=(writer, ()))
        answers.append(unchanged)
    same(answers[0], answers[2], "a Failed condition without sign")
    same(answers[1], answers[3], "an unchanged status without sign")
    assert (answers[2].status, answers[3].status) == (403, 200)


async def test_updates_of_the_object_change_metadata_only(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    name = scene.name("upd")
    await scene.created(csr_object(name, request))
    answers = []
    for peer in scene.pair.peers:
        current = (await peer.call("GET", f"{CSRS}/{name}")).body
        current["metadata"]["labels"] = {"team": "a"}
        current["spec"]["usages"] = ["server auth"]
        current["status"] = {"conditions": [condition("Approved")]}
        answers.append(await peer.call("PUT", f"{CSRS}/{name}", current, user=scene.user))
    same(*answers)
    assert answers[1].body["spec"]["usages"] == ["client auth"]


async def test_list_by_signer_watch_and_delete(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    name = scene.name("lw")
    await scene.created(csr_object(name, request))
    selector = f"?fieldSelector=spec.signerName%3D{CLIENT_SIGNER.replace('/', '%2F')}"
    answers = await scene.pair.both("GET", CSRS + selector, user=scene.user)
    names = [{i["metadata"]["name"] for i in a.body["items"]} & {name} for a in answers]
    assert names == [{name}, {name}]
    sim, real = await scene.pair.both("DELETE", f"{CSRS}/{name}", user=scene.user)
    same(sim, real)
    sim, real = await scene.pair.both("GET", f"{CSRS}/{name}", user=scene.user)
    same(sim, real)
    assert real.status == 404


async def test_a_watch_sees_the_approval_then_the_certificate(scene: Scene) -> None:
    request, _ = openssl_csr(scene.workdir, "/CN=alice")
    name = scene.name("w")
    sim, real = await scene.created(csr_object(name, request))
    watches = []
    for peer, created in zip(scene.pair.peers, (sim, real), strict=True):
        rv = created.body["metadata"]["resourceVersion"]
        path = f"{CSRS}?watch=true&fieldSelector=metadata.name%3D{name}&resourceVersion={rv}"
        watches.append(
            asyncio.create_task(
                peer.watch(path, lambda e: bool(e["object"].get("status", {}).get("certificate")))
            )
        )
    await asyncio.sleep(0.5)  # both watches established before the approval
    await scene.approve(name)
    seen = [[(e["type"], summary(e["object"])) for e in await watch] for watch in watches]
    assert seen[0] == seen[1] == [("MODIFIED", "Approved"), ("MODIFIED", "Approved,Issued")]


async def test_kubectl_approve_then_the_issued_certificate_authenticates(scene: Scene) -> None:
    request, key_file = openssl_csr(scene.workdir, "/CN=dora/O=devs/O=qa")
    name = scene.name("kubectl")
    await scene.created(csr_object(name, request, usages=["client auth"]))
    whoami = []
    for peer in scene.pair.peers:
        approve = await peer.kubectl(scene.workdir, "certificate", "approve", name)
        assert approve.returncode == 0, approve.stderr
        assert approve.stdout.strip() == f"certificatesigningrequest.certificates.k8s.io/{name} approved"
        signed = await settled(peer, name)
        listed = await peer.kubectl(scene.workdir, "get", "csr", name, "--no-headers")
        columns = listed.stdout.split()
        assert columns[2:] == [CLIENT_SIGNER, scene.user[0], "<none>", "Approved,Issued"], listed.stdout
        condition_now = signed["status"]["conditions"][0]
        assert (condition_now["reason"], condition_now["message"]) == (
            "KubectlApprove",
            "This CSR was approved by kubectl certificate approve.",
        )
        cert_file = scene.workdir / f"{peer.name}.crt"
        cert_file.write_bytes(base64.b64decode(signed["status"]["certificate"]))
        home = scene.workdir / f"whoami-{peer.name}"
        home.mkdir()
        config = home / "kubeconfig"
        config.write_text(
            json.dumps(
                {
                    "apiVersion": "v1",
                    "kind": "Config",
                    "clusters": [
                        {
                            "name": "c",
                            "cluster": {
                                "server": peer.url,
                                "certificate-authority-data": base64.b64encode(peer.cluster.ca_pem).decode(),
                            },
                        }
                    ],
                    "users": [
                        {
                            "name": "u",
                            "user": {"client-certificate": str(cert_file), "client-key": str(key_file)},
                        }
                    ],
                    "contexts": [{"name": "c", "context": {"cluster": "c", "user": "u"}}],
                    "current-context": "c",
                }
            )
        )
        result = await peer.kubectl_with(config, "auth", "whoami", "-o", "json")
        assert result.returncode == 0, result.stderr
        whoami.append(json.loads(result.stdout)["status"]["userInfo"])
    assert without_certificate(whoami[0]) == without_certificate(whoami[1])
    assert whoami[1]["username"] == "dora" and whoami[1]["groups"] == ["qa", "devs", "system:authenticated"]


async def test_discovery_of_the_group(scene: Scene) -> None:
    sim, real = await scene.pair.both("GET", "/apis/certificates.k8s.io/v1")
    assert (sim.status, real.status) == (200, 200)
    assert_same(sim.body, real.body)
