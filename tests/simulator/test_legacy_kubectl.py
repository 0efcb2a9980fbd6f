"""The manual legacy-token flow through the real kubectl: a service-account-token Secret filled by the controller."""

from __future__ import annotations

import asyncio
import base64
import time
from pathlib import Path

import pytest
import yaml
from kubesim_support import admin
from support.processes import kubectl

from kubesim import KubeSim

pytestmark = pytest.mark.kubectl

TOKEN_SECRET = """\
apiVersion: v1
kind: Secret
metadata:
  name: jenkins-token
  annotations:
    kubernetes.io/service-account.name: jenkins
type: kubernetes.io/service-account-token
"""


async def ok(sim: KubeSim, *args: str) -> str:
    result = await admin(sim, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def wait_for_token(sim: KubeSim, name: str, timeout: float = 10.0) -> str:
    """Poll like a client of a real cluster: the controller fills data.token asynchronously."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        encoded = await ok(sim, "get", "secret", name, "-o", "jsonpath={.data.token}")
        if encoded:
            return base64.b64decode(encoded).decode()
        await asyncio.sleep(0.05)
    raise AssertionError(f"secret {name} got no token within {timeout}s")


async def apply(sim: KubeSim, tmp_path: Path, manifest: str) -> None:
    path = tmp_path / "manifest.yaml"
    path.write_text(manifest)
    await ok(sim, "apply", "-f", str(path))


async def test_the_manual_legacy_token_flow(kubesim: KubeSim, tmp_path: Path) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    await apply(kubesim, tmp_path, TOKEN_SECRET)
    token = await wait_for_token(kubesim, "jenkins-token")

    secret = yaml.safe_load(await ok(kubesim, "get", "secret", "jenkins-token", "-o", "yaml"))
    sa_uid = (await ok(kubesim, "get", "serviceaccount", "jenkins", "-o", "jsonpath={.metadata.uid}")).strip()
    assert secret["type"] == "kubernetes.io/service-account-token"
    assert set(secret["data"]) == {"ca.crt", "namespace", "token"}
    assert base64.b64decode(secret["data"]["namespace"]) == b"default"
    assert base64.b64decode(secret["data"]["ca.crt"]) == kubesim.ca_pem
    assert secret["metadata"]["annotations"]["kubernetes.io/service-account.uid"] == sa_uid

    config = kubesim.write_kubeconfig(tmp_path / "legacy.kubeconfig", token=token)
    result = await kubectl(config, "auth", "whoami")
    assert result.returncode == 0, result.stderr
    assert "system:serviceaccount:default:jenkins" in result.stdout
    # each use is recorded on the Secret, as kube-apiserver's legacy-token tracking does
    labels = yaml.safe_load(await ok(kubesim, "get", "secret", "jenkins-token", "-o", "yaml"))["metadata"][
        "labels"
    ]
    assert labels["kubernetes.io/legacy-token-last-used"] == time.strftime("%Y-%m-%d", time.gmtime())

    await ok(
        kubesim, "label", "secret", "jenkins-token", "kubernetes.io/legacy-token-invalid-since=2023-10-25"
    )
    result = await kubectl(config, "auth", "whoami")
    assert result.returncode != 0 and "Unauthorized" in result.stderr


async def test_deleting_the_service_account_deletes_its_token_secret(
    kubesim: KubeSim, tmp_path: Path
) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    await apply(kubesim, tmp_path, TOKEN_SECRET)
    token = await wait_for_token(kubesim, "jenkins-token")
    await ok(kubesim, "delete", "serviceaccount", "jenkins")
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        result = await admin(kubesim, "get", "secret", "jenkins-token")
        if result.returncode != 0:
            break
        await asyncio.sleep(0.05)
    assert 'secrets "jenkins-token" not found' in result.stderr
    config = kubesim.write_kubeconfig(tmp_path / "legacy.kubeconfig", token=token)
    result = await kubectl(config, "auth", "whoami")
    assert result.returncode != 0 and "Unauthorized" in result.stderr


async def test_a_token_secret_without_the_account_annotation_is_invalid(
    kubesim: KubeSim, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text(
        TOKEN_SECRET.replace("  annotations:\n    kubernetes.io/service-account.name: jenkins\n", "")
    )
    result = await admin(kubesim, "apply", "-f", str(path))
    assert result.returncode != 0
    assert "Required value" in result.stderr and "kubernetes.io/service-account.name" in result.stderr
