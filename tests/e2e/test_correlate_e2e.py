"""What a token did: a token issued through the broker is used with the real kubectl against the real control
plane; `token-broker audit correlate` reads the audit log kube-apiserver wrote and lists the token's requests
under its issuance record. The API form (POST /v1/audit/correlations) and its visibility rule too."""

from __future__ import annotations

import asyncio
import json
import ssl
import uuid
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from backends import REAL
from e2e_support import mtls_context, post_token
from support.openssl import client_cert
from support.processes import TOKEN_BROKER, clean_env

from broker.cli.demo_stack import DemoStack

OPERATORS = "token-broker:operators"


async def correlate_api(stack: DemoStack, ctx: ssl.SSLContext, body: bytes, **params: str) -> tuple[int, Any]:
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30), trust_env=False) as session,
        session.post(
            stack.broker_url + "/v1/audit/correlations",
            data=body,
            params=params,
            headers={"Content-Type": params.pop("content_type", "application/x-ndjson")},
            ssl=ctx,
        ) as resp,
    ):
        text = await resp.text()
        return resp.status, json.loads(text) if text else None


async def cli(stack: DemoStack, cert: Path, key: Path, *args: str, home: Path) -> tuple[int, str, str]:
    proc = await asyncio.create_subprocess_exec(
        TOKEN_BROKER,
        "audit",
        "correlate",
        "--broker",
        stack.broker_url,
        "--cacert",
        str(stack.paths.server_ca),
        "--cert",
        str(cert),
        "--key",
        str(key),
        *args,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
        env=clean_env(home),
    )
    out, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode is not None
    return proc.returncode, out.decode(), err.decode()


async def wait_in_log(log: Path, needle: str, count: int, timeout: float = 30) -> None:
    """kube-apiserver writes its audit log as requests complete: wait (bounded) for the token's lines."""
    async with asyncio.timeout(timeout):
        while log.read_text().count(needle) < count:
            await asyncio.sleep(0.2)


@pytest.mark.parametrize("backend", [pytest.param("real", marks=REAL)], indirect=True)
async def test_a_tokens_requests_are_listed_under_its_issuance(stack, kubectl, tmp_path: Path) -> None:
    jenkins = client_cert(
        tmp_path, stack.paths.client_ca, stack.paths.client_ca_key, "/CN=jenkins/O=ci", "jenkins"
    )
    status, _, text = await post_token(
        stack, mtls_context(stack, *jenkins), {"role": "deployer", "namespace": stack.namespace}
    )
    assert status == 201, text
    issued = json.loads(text)
    kubeconfig = tmp_path / "token.kubeconfig"
    stack.cluster.write_kubeconfig(kubeconfig, token=issued["token"])
    ns = stack.namespace
    commands = [
        (["-n", ns, "get", "serviceaccounts", "-o", "name"], 0),  # allowed by the deployer's RoleBinding
        (["-n", ns, "get", "secret", "no-such-secret"], 1),  # 404 or 403: either way a failed request
        (["auth", "whoami"], 0),
    ]
    for args, rc in commands:
        result = await kubectl(kubeconfig, *args, home=tmp_path)
        assert (result.returncode == 0) == (rc == 0), result.stderr
    log = stack.cluster.audit_log  # the ControlPlane itself on the real backend
    await wait_in_log(log, f"JTI={issued['jti']}", 3)

    rc, out, err = await cli(stack, *jenkins, "--k8s-audit-log", str(log), "--output", "json", home=tmp_path)
    assert rc == 0, err
    report = json.loads(out)
    [token] = [t for t in report["tokens"] if t["jti"] == issued["jti"]]
    assert token["token"]["token_id"] == issued["token_id"]
    assert token["token"]["caller"]["user"] == "jenkins" and token["token"]["role"] == "deployer"
    requests = token["requests"]
    by_what = {(r["verb"], r["resource"], r["namespace"]): r for r in requests}
    listed = by_what[("list", "serviceaccounts", ns)]
    assert listed["code"] == 200
    assert listed["username"] == f"system:serviceaccount:{ns}:deployer"
    assert listed["user_agent"].startswith("kubectl")
    missing = by_what[("get", "secrets", ns)]
    assert missing["name"] == "no-such-secret" and missing["code"] in (403, 404)
    assert by_what[("create", "selfsubjectreviews", "")]["code"] == 201
    issued_at = datetime.fromisoformat(token["token"]["issued_at"])
    for r in requests:
        assert issued_at <= datetime.fromisoformat(r["time"]) <= datetime.now(UTC)
    assert [r["time"] for r in requests] == sorted(r["time"] for r in requests)
    # every token the log names belongs to this caller: the other stacks' tokens are not listed
    assert all(t["token"] is not None and t["token"]["caller"]["user"] == "jenkins" for t in report["tokens"])

    # the text form, one token
    rc, out, err = await cli(
        stack, *jenkins, "--k8s-audit-log", str(log), "--jti", f"JTI={issued['jti']}", home=tmp_path
    )
    assert rc == 0, err
    assert f"token {issued['token_id']}" in out and "serviceaccounts" in out and "selfsubjectreviews" in out
    assert "1 tokens" in out


def audit_line(
    jti: str, *, stage: str = "ResponseComplete", code: int = 200, audit_id: str | None = None
) -> str:
    """A kube-apiserver audit event (audit.k8s.io/v1, Metadata level), as the log backend writes it."""
    event = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "level": "Metadata",
        "auditID": audit_id or str(uuid.uuid4()),
        "stage": stage,
        "requestURI": "/api/v1/namespaces/demo/pods?limit=500",
        "verb": "list",
        "user": {
            "username": "system:serviceaccount:demo:deployer",
            "groups": ["system:serviceaccounts", "system:authenticated"],
            "extra": {"authentication.kubernetes.io/credential-id": [f"JTI={jti}"]},
        },
        "sourceIPs": ["127.0.0.1"],
        "userAgent": "kubectl/v1.32.0",
        "objectRef": {"resource": "pods", "namespace": "demo", "apiVersion": "v1"},
        "responseStatus": {"metadata": {}, "code": code} if stage != "RequestReceived" else None,
        "requestReceivedTimestamp": "2030-01-01T00:00:01.000000Z",
        "stageTimestamp": "2030-01-01T00:00:01.050000Z",
    }
    return json.dumps({k: v for k, v in event.items() if v is not None})


async def test_the_api_form_and_who_may_see_what(sim_stack, tmp_path: Path) -> None:
    stack = sim_stack
    jenkins = stack.make_caller("jenkins", ["ci"])
    mallory = stack.make_caller("mallory", ["ci"])
    ops = stack.make_caller("ops", [OPERATORS])
    status, _, text = await post_token(
        stack, mtls_context(stack, *jenkins), {"role": "deployer", "namespace": stack.namespace}
    )
    assert status == 201, text
    mine = json.loads(text)["jti"]
    stranger = str(uuid.uuid4())  # a token some other issuer made
    log = "\n".join(
        [
            audit_line(mine, audit_id="a1", stage="ResponseStarted", code=0),
            audit_line(mine, audit_id="a1"),  # the same request, later stage: kept once, with its code
            audit_line(mine, code=403),
            audit_line(stranger),
            "not json at all {",
            json.dumps({"kind": "Event", "user": {"username": "admin"}}),  # no credential id: ignored
        ]
    ).encode()

    status, report = await correlate_api(stack, mtls_context(stack, *jenkins), log)
    assert status == 200, report
    [token] = report["tokens"]
    # a1 once (its ResponseComplete, code 200), and the refused one
    assert token["jti"] == mine and sorted(r["code"] for r in token["requests"]) == [200, 403]
    assert report["lines"] == 6

    status, report = await correlate_api(stack, mtls_context(stack, *mallory), log)
    assert (status, report["tokens"]) == (200, [])

    status, report = await correlate_api(stack, mtls_context(stack, *ops), log)
    assert {(t["jti"], t["token"] is None) for t in report["tokens"]} == {(mine, False), (stranger, True)}

    status, report = await correlate_api(stack, mtls_context(stack, *ops), log, jti=f"JTI={stranger}")
    assert [t["jti"] for t in report["tokens"]] == [stranger]

    status, problem = await correlate_api(
        stack, mtls_context(stack, *ops), log, content_type="application/json"
    )
    assert status == 415 and problem["status"] == 415
