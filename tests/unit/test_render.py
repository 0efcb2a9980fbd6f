"""kubeconfig, ExecCredential and exec-plugin kubeconfig documents, checked by parsing them back and by the
real kubectl (which needs no server for `config view` / `config get-contexts`; the end-to-end tests give it a
local HTTPS server to talk to)."""

from __future__ import annotations

import base64
import json
import ssl
import sys
from datetime import UTC, datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
import yaml
from aiohttp import web
from support.processes import kubectl

from broker import render
from broker._kits.pki import CertificateAuthority
from broker.render import ExecEntry

TOKEN = "eyJhbGciOiJSUzI1NiIsImtpZCI6ImsxIn0.eyJzdWIiOiJzeXN0ZW06c2VydmljZWFjY291bnQ6Y2k6ZGVwbG95ZXIifQ.c2ln"
CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBfake\n-----END CERTIFICATE-----\n"


async def kubectl_ok(*args: str, home: Path) -> str:
    done = await kubectl(None, *args, home=home)
    assert done.returncode == 0, done.stderr
    return done.stdout


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text)
    return path


# --- kubeconfig with a token ---------------------------------------------------------------------------


def test_kubeconfig_shape() -> None:
    text = render.kubeconfig("staging", "https://10.0.0.1:6443", CA_PEM, "deployer", TOKEN, "ci")
    doc = yaml.safe_load(text)
    assert doc["apiVersion"] == "v1" and doc["kind"] == "Config"
    assert doc["clusters"] == [
        {
            "name": "staging",
            "cluster": {
                "server": "https://10.0.0.1:6443",
                "certificate-authority-data": base64.b64encode(CA_PEM).decode(),
            },
        }
    ]
    assert doc["users"] == [{"name": "deployer", "user": {"token": TOKEN}}]
    assert doc["contexts"] == [
        {"name": "deployer@staging", "context": {"cluster": "staging", "user": "deployer", "namespace": "ci"}}
    ]
    assert doc["current-context"] == "deployer@staging"


def test_kubeconfig_without_ca_or_namespace() -> None:
    doc = yaml.safe_load(render.kubeconfig("prod", "https://k8s.example:443", None, "viewer", TOKEN, None))
    assert doc["clusters"][0]["cluster"] == {"server": "https://k8s.example:443"}
    assert doc["contexts"][0]["context"] == {"cluster": "prod", "user": "viewer"}


@pytest.mark.kubectl
async def test_kubectl_reads_the_kubeconfig(tmp_path: Path) -> None:
    path = write(
        tmp_path,
        "kubeconfig",
        render.kubeconfig("staging", "https://10.0.0.1:6443", CA_PEM, "deployer", TOKEN, "ci"),
    )
    view = json.loads(
        await kubectl_ok("config", "view", "--kubeconfig", str(path), "--raw", "-o", "json", home=tmp_path)
    )
    assert view["current-context"] == "deployer@staging"
    assert view["users"][0]["user"]["token"] == TOKEN
    assert base64.b64decode(view["clusters"][0]["cluster"]["certificate-authority-data"]) == CA_PEM
    redacted = await kubectl_ok("config", "view", "--kubeconfig", str(path), "-o", "json", home=tmp_path)
    assert TOKEN not in redacted
    contexts = await kubectl_ok("config", "get-contexts", "--kubeconfig", str(path), home=tmp_path)
    row = next(line.split() for line in contexts.splitlines() if "deployer@staging" in line)
    assert row == ["*", "deployer@staging", "staging", "deployer", "ci"]


# --- ExecCredential ------------------------------------------------------------------------------------


def test_exec_credential_shape() -> None:
    expires = datetime(2025, 1, 1, 12, 30, 5, 999_999, tzinfo=UTC)
    assert render.exec_credential(TOKEN, expires) == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": TOKEN, "expirationTimestamp": "2025-01-01T12:30:05Z"},
    }


def test_exec_credential_without_expiry() -> None:
    # a legacy Secret token has no exp: expirationTimestamp is optional and then omitted
    assert render.exec_credential(TOKEN, None)["status"] == {"token": TOKEN}


def test_exec_credential_converts_to_utc_and_refuses_naive_times() -> None:
    cet = timezone(timedelta(hours=1))
    stamp = render.exec_credential(TOKEN, datetime(2025, 1, 1, 13, 0, tzinfo=cet))["status"][
        "expirationTimestamp"
    ]
    assert stamp == "2025-01-01T12:00:00Z"
    with pytest.raises(ValueError):
        render.exec_credential(TOKEN, datetime(2025, 1, 1, 12, 0))


# --- exec-plugin kubeconfig ----------------------------------------------------------------------------


def entries(broker_url: str = "https://broker.example:8443") -> list[ExecEntry]:
    common: dict[str, Any] = {
        "broker_url": broker_url,
        "client_cert": "/home/ci/.tb/client.crt",
        "client_key": "/home/ci/.tb/client.key",
        "broker_ca": "/home/ci/.tb/ca.crt",
    }
    return [
        ExecEntry("deployer", "staging", "https://10.0.0.1:6443", CA_PEM, namespace="ci", **common),
        ExecEntry("viewer", "staging", "https://10.0.0.1:6443", CA_PEM, **common),
        ExecEntry("deployer", "prod", "https://10.9.0.1:6443", None, namespace="apps", **common),
    ]


def test_exec_kubeconfig_shape() -> None:
    doc = yaml.safe_load(render.exec_kubeconfig(entries()))
    assert [c["name"] for c in doc["clusters"]] == ["staging", "prod"]
    assert [c["name"] for c in doc["contexts"]] == ["deployer@staging", "viewer@staging", "deployer@prod"]
    assert doc["current-context"] == "deployer@staging"
    exec_ = doc["users"][0]["user"]["exec"]
    assert exec_ == {
        "apiVersion": "client.authentication.k8s.io/v1",
        "command": "token-broker",
        "args": [
            "credential", "--broker", "https://broker.example:8443", "--role", "deployer", "--cluster", "staging",
            "--namespace", "ci", "--cert", "/home/ci/.tb/client.crt", "--key", "/home/ci/.tb/client.key", "--cacert", "/home/ci/.tb/ca.crt",
        ],
        "interactiveMode": "Never",
        "provideClusterInfo": False,
    }  # fmt: skip
    assert "--namespace" not in doc["users"][1]["user"]["exec"]["args"]
    assert doc["contexts"][1]["context"] == {"cluster": "staging", "user": "viewer@staging"}


def test_exec_kubeconfig_current_context_and_errors() -> None:
    doc = yaml.safe_load(render.exec_kubeconfig(entries(), current="deployer@prod"))
    assert doc["current-context"] == "deployer@prod"
    with pytest.raises(ValueError):
        render.exec_kubeconfig(entries(), current="nope@nowhere")
    with pytest.raises(ValueError):
        render.exec_kubeconfig([])
    with pytest.raises(ValueError):
        render.exec_kubeconfig([*entries(), entries()[0]])
    clash = ExecEntry("other", "staging", "https://elsewhere:6443", CA_PEM, broker_url="https://b")
    with pytest.raises(ValueError):
        render.exec_kubeconfig([*entries(), clash])


@pytest.mark.kubectl
async def test_kubectl_reads_the_exec_kubeconfig(tmp_path: Path) -> None:
    path = write(tmp_path, "kubeconfig", render.exec_kubeconfig(entries()))
    view = json.loads(
        await kubectl_ok("config", "view", "--kubeconfig", str(path), "-o", "json", home=tmp_path)
    )
    exec_ = view["users"][0]["user"]["exec"]
    assert exec_["interactiveMode"] == "Never"
    assert exec_["args"][:5] == [
        "credential",
        "--broker",
        "https://broker.example:8443",
        "--role",
        "deployer",
    ]
    contexts = await kubectl_ok(
        "config", "get-contexts", "--kubeconfig", str(path), "-o", "name", home=tmp_path
    )
    assert contexts.split() == ["deployer@prod", "deployer@staging", "viewer@staging"]


# --- end to end: kubectl sends what we rendered to an API server ---------------------------------------


class FakeApiServer:
    """Just enough HTTPS endpoint for `kubectl get --raw /version`; records the Authorization it receives."""

    def __init__(self, tmp_path: Path) -> None:
        self.ca = CertificateAuthority.generate("test-apiserver-ca")
        served = self.ca.issue_server_cert(["127.0.0.1"])
        (tmp_path / "srv.crt").write_bytes(served.cert_pem)
        (tmp_path / "srv.key").write_bytes(served.key_pem)
        self.ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ssl.load_cert_chain(tmp_path / "srv.crt", tmp_path / "srv.key")
        self.authorizations: list[str] = []
        self.runner: web.AppRunner | None = None
        self.url = ""

    async def _version(self, request: web.Request) -> web.Response:
        self.authorizations.append(request.headers.get("Authorization", ""))
        return web.json_response({"major": "1", "minor": "32", "gitVersion": "v1.32.0"})

    async def __aenter__(self) -> FakeApiServer:
        app = web.Application()
        app.router.add_get("/version", self._version)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0, ssl_context=self.ssl)
        await site.start()
        port = self.runner.addresses[0][1]
        self.url = f"https://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self.runner is not None
        await self.runner.cleanup()


@pytest.mark.kubectl
async def test_kubectl_uses_the_token_of_a_rendered_kubeconfig(tmp_path: Path) -> None:
    async with FakeApiServer(tmp_path) as server:
        text = render.kubeconfig("staging", server.url, server.ca.cert_pem, "deployer", TOKEN, "ci")
        path = write(tmp_path, "kubeconfig", text)
        out = await kubectl_ok("get", "--raw", "/version", "--kubeconfig", str(path), home=tmp_path)
    assert json.loads(out)["gitVersion"] == "v1.32.0"
    assert server.authorizations and set(server.authorizations) == {f"Bearer {TOKEN}"}


@pytest.mark.kubectl
async def test_kubectl_runs_the_exec_plugin_and_uses_its_credential(tmp_path: Path) -> None:
    credential = render.exec_credential(TOKEN, datetime.now(UTC) + timedelta(minutes=15))
    record = tmp_path / "plugin-call.json"
    plugin = tmp_path / "fake-token-broker"
    # stands in for `token-broker credential`: records how kubectl called it, prints the rendered credential
    plugin.write_text(
        f"#!{sys.executable}\n"
        "import json, os, sys\n"
        f"open({str(record)!r}, 'w').write(json.dumps({{'argv': sys.argv[1:], "
        "'info': json.loads(os.environ['KUBERNETES_EXEC_INFO'])}))\n"
        f"print({json.dumps(json.dumps(credential))})\n"
    )
    plugin.chmod(0o755)
    async with FakeApiServer(tmp_path) as server:
        entry = ExecEntry(
            "deployer", "staging", server.url, server.ca.cert_pem,
            broker_url="https://broker.example:8443", namespace="ci", command=str(plugin),
        )  # fmt: skip
        path = write(tmp_path, "kubeconfig", render.exec_kubeconfig([entry]))
        out = await kubectl_ok("get", "--raw", "/version", "--kubeconfig", str(path), home=tmp_path)
    assert json.loads(out)["major"] == "1"
    assert server.authorizations and set(server.authorizations) == {f"Bearer {TOKEN}"}
    call = json.loads(record.read_text())
    assert call["argv"] == [
        "credential", "--broker", "https://broker.example:8443", "--role", "deployer", "--cluster", "staging",
        "--namespace", "ci",
    ]  # fmt: skip
    assert call["info"]["apiVersion"] == "client.authentication.k8s.io/v1"
    assert call["info"]["spec"]["interactive"] is False
