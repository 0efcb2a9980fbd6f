"""Issue → verify → use, end to end: openssl-made caller certificates, the broker, the simulator and the
real kubectl."""

from __future__ import annotations

import asyncio
import json
import logging
import re
from pathlib import Path

import pytest
import yaml
from backends import fresh_name
from cluster_admin import ClusterAdmin
from e2e_support import mtls_context, post_token
from support.openssl import client_cert
from support.processes import TOKEN_BROKER, clean_env

JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")


@pytest.fixture
def jenkins(stack, tmp_path: Path) -> tuple[Path, Path]:
    p = stack.paths
    return client_cert(tmp_path, p.client_ca, p.client_ca_key, "/CN=jenkins/O=ci", "jenkins")


async def test_openssl_caller_gets_a_token_kubectl_accepts(stack, jenkins, kubectl, tmp_path: Path) -> None:
    ctx = mtls_context(stack, *jenkins)
    status, headers, text = await post_token(
        stack, ctx, {"role": "deployer", "namespace": stack.namespace, "ttl": "15m"}
    )
    assert status == 201, text
    body = json.loads(text)
    assert body["service_account"] == {"namespace": stack.namespace, "name": "deployer"}
    assert body["role"] == "deployer"
    assert body["jti"]

    # a kubeconfig written by hand around the JSON token
    kubeconfig = tmp_path / "from-json.kubeconfig"
    stack.cluster.write_kubeconfig(kubeconfig, token=body["token"])
    result = await kubectl(kubeconfig, "auth", "whoami", "-o", "json", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"]["userInfo"]["username"] == deployer(stack)

    # the broker's own kubeconfig output
    status, headers, text = await post_token(
        stack, ctx, {"role": "deployer", "namespace": stack.namespace}, params={"format": "kubeconfig"}
    )
    assert status == 201, text
    assert headers["Content-Type"].startswith("application/yaml")
    issued = tmp_path / "issued.kubeconfig"
    issued.write_text(text)
    assert yaml.safe_load(text)["kind"] == "Config"
    result = await kubectl(issued, "auth", "whoami", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert deployer(stack) in result.stdout
    # the deployer's RoleBinding lets it act in its namespace, as the token's identity
    result = await kubectl(
        issued, "-n", stack.namespace, "get", "serviceaccounts", "-o", "name", home=tmp_path
    )
    assert result.returncode == 0, result.stderr
    assert "serviceaccount/deployer" in result.stdout


async def test_exec_plugin_kubeconfig_works_with_kubectl(stack, jenkins, kubectl, tmp_path: Path) -> None:
    cert, key = jenkins
    out = tmp_path / "exec.kubeconfig"
    proc = await asyncio.create_subprocess_exec(
        TOKEN_BROKER,
        "kubeconfig",
        "--broker",
        stack.broker_url,
        "--cacert",
        str(stack.paths.server_ca),
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--out",
        str(out),
        env=clean_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    _, err = await asyncio.wait_for(proc.communicate(), 60)
    assert proc.returncode == 0, err.decode()
    doc = yaml.safe_load(out.read_text())
    contexts = {c["name"] for c in doc["contexts"]}
    assert contexts == {"deployer@demo", "reader@demo"}

    whoami = ("--context", "deployer@demo", "auth", "whoami", "-o", "json")
    result = await kubectl(out, *whoami, home=tmp_path)
    assert result.returncode == 0, result.stderr
    first = json.loads(result.stdout)["status"]["userInfo"]
    assert first["username"] == deployer(stack)
    # the plugin cached the credential in a private file; a second kubectl reuses it (the same token id)
    cached = list((tmp_path / ".cache" / "token-broker" / "credentials").glob("*.json"))
    assert len(cached) == 1
    assert cached[0].stat().st_mode & 0o777 == 0o600
    sealed = json.loads(cached[0].read_text())["sealed"]
    result = await kubectl(out, *whoami, home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["status"]["userInfo"]["extra"] == first["extra"]
    assert json.loads(cached[0].read_text())["sealed"] == sealed


async def test_exec_credential_format(stack, jenkins) -> None:
    status, _, text = await post_token(
        stack, mtls_context(stack, *jenkins), {"role": "reader"}, params={"format": "exec-credential"}
    )
    assert status == 201, text
    doc = json.loads(text)
    assert doc["apiVersion"] == "client.authentication.k8s.io/v1"
    assert doc["kind"] == "ExecCredential"
    assert doc["status"]["token"].count(".") == 2
    assert doc["status"]["expirationTimestamp"].endswith("Z")


async def test_unknown_and_unauthorised_roles_look_the_same(stack, jenkins, tmp_path: Path) -> None:
    ctx = mtls_context(stack, *jenkins)
    unknown = await post_token(stack, ctx, {"role": "no-such-role"})
    forbidden = await post_token(stack, ctx, {"role": "legacy-robot"})  # exists, but not granted to ci
    assert unknown[0] == forbidden[0] == 403
    a, b = json.loads(unknown[2]), json.loads(forbidden[2])
    assert a["title"] == b["title"]
    assert a["detail"].replace("no-such-role", "R") == b["detail"].replace("legacy-robot", "R")


async def test_namespace_outside_role_and_ttl_bounds(stack, jenkins) -> None:
    ctx = mtls_context(stack, *jenkins)
    status, _, text = await post_token(stack, ctx, {"role": "deployer", "namespace": "kube-system"})
    assert status == 403, text
    status, _, text = await post_token(
        stack, ctx, {"role": "deployer", "namespace": stack.namespace, "ttl": "2h"}
    )
    assert status == 422, text
    status, _, text = await post_token(stack, ctx, {"role": "reader", "ttl": 60})
    assert status == 422, text
    status, _, text = await post_token(stack, ctx, {"role": "reader", "audiences": ["vault"]})
    assert status == 422, text


async def test_hundred_concurrent_requests_create_the_service_account_once(stack, jenkins) -> None:
    namespace = fresh_name("ci")  # the deployer role's "ci-*"
    await ClusterAdmin(stack.cluster).namespace(namespace)
    ctx = mtls_context(stack, *jenkins)
    results = await asyncio.gather(
        *(post_token(stack, ctx, {"role": "deployer", "namespace": namespace}) for _ in range(100))
    )
    assert [r[0] for r in results] == [201] * 100, {r[2] for r in results if r[0] != 201}
    created = [
        e
        for e in stack.cluster.audit_events
        if e.verb == "create"
        and e.path == f"/api/v1/namespaces/{namespace}/serviceaccounts"
        and e.code == 201
    ]
    assert len(created) == 1
    subjects = {json.loads(r[2])["service_account"]["name"] for r in results}
    assert subjects == {"deployer"}


async def test_nothing_logged_contains_a_token(stack, jenkins, caplog) -> None:
    caplog.set_level(logging.DEBUG)
    ctx = mtls_context(stack, *jenkins)
    tokens = []
    for body in (
        {"role": "deployer"},
        {"role": "reader"},
        {"role": "nope"},
        {"role": "deployer", "ttl": "9h"},
    ):
        status, _, text = await post_token(stack, ctx, body)
        if status == 201:
            tokens.append(json.loads(text)["token"])
    assert tokens
    logged = "\n".join(r.getMessage() + " " + repr(vars(r)) for r in caplog.records)
    assert not JWT.search(logged)
    for token in tokens:
        assert token not in logged


async def test_broker_without_token_permission_gets_a_clear_502(stack, jenkins) -> None:
    # take serviceaccounts/token away from the broker's ClusterRole, as a too-narrow Helm values file would
    admin = ClusterAdmin(stack.cluster)
    path = f"/apis/rbac.authorization.k8s.io/v1/clusterroles/{stack.broker_user}"
    role = await admin.get(path)
    assert role is not None
    role["rules"] = [r for r in role["rules"] if "serviceaccounts/token" not in r.get("resources", [])]
    status, answer = await admin.request("PUT", path, role)
    assert status == 200, answer
    # a real API server's RBAC authorizer sees the change through its informer, a moment later
    for _ in range(100):
        status, headers, text = await post_token(stack, mtls_context(stack, *jenkins), {"role": "reader"})
        if status != 201:
            break
        await asyncio.sleep(0.1)
    assert status == 502, text
    problem = json.loads(text)
    assert headers["Content-Type"].startswith("application/problem+json")
    assert "serviceaccounts/token" in problem["detail"]


def deployer(stack) -> str:
    """The user name a deployer token of this stack authenticates as."""
    return f"system:serviceaccount:{stack.namespace}:deployer"
