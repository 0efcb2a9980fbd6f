"""Configuration: kubeconfig contexts, in-cluster files with token rotation, exec plugins, proxies."""

from __future__ import annotations

import asyncio
import contextlib
import json
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import yaml
from kube_support import MakeClient

from broker._kits.pki import write_private
from broker.kube import Cluster, ClusterConfigError, InClusterFiles
from kubesim import KubeSim

WHOAMI = "/apis/authentication.k8s.io/v1/selfsubjectreviews"
WHOAMI_BODY = {"apiVersion": "authentication.k8s.io/v1", "kind": "SelfSubjectReview"}
NS, SA = "kube-system", "token-broker"


async def whoami(client: Cluster) -> str:
    answer = await client.api.post_json(WHOAMI, WHOAMI_BODY)
    return str(answer["status"]["userInfo"]["username"])


async def bound_token(admin: Cluster) -> tuple[str, str]:
    """A token of kube-system/token-broker bound to a fresh Secret: (token, secret name)."""
    await admin.accounts.ensure(NS, SA)
    secret = await admin.secrets.create_binding(NS, service_account=SA)
    token = await admin.tokens.request(NS, SA, audiences=[], expiration_seconds=3600, bound_secret=secret)
    return token.token, secret.name


async def test_unusable_configuration(tmp_path: Path, kubesim: KubeSim) -> None:
    with pytest.raises(ClusterConfigError, match="missing"):
        await Cluster.connect(
            "x", kubeconfig=tmp_path / "missing", context=None, in_cluster=False, request_timeout=1
        )
    assert kubesim.admin_kubeconfig is not None
    with pytest.raises(ClusterConfigError, match="nope"):
        await Cluster.connect(
            "x", kubeconfig=kubesim.admin_kubeconfig, context="nope", in_cluster=False, request_timeout=1
        )
    with pytest.raises(ClusterConfigError, match="in-cluster"):
        await Cluster.connect(
            "x",
            kubeconfig=None,
            context=None,
            in_cluster=True,
            request_timeout=1,
            in_cluster_files=InClusterFiles(tmp_path / "token", tmp_path / "ca.crt", environ={}),
        )


async def test_named_context(kubesim: KubeSim, make_client: MakeClient, tmp_path: Path) -> None:
    assert kubesim.admin_kubeconfig is not None
    config = yaml.safe_load(kubesim.admin_kubeconfig.read_text())
    good = config["contexts"][0]["name"]
    config["contexts"].append({"name": "broken", "context": {"cluster": "kubesim", "user": "nobody"}})
    config["users"].append({"name": "nobody", "user": {"token": "garbage"}})
    config["current-context"] = "broken"
    path = tmp_path / "two.kubeconfig"
    write_private(path, yaml.safe_dump(config).encode())
    client = await Cluster.connect("x", kubeconfig=path, context=good, in_cluster=False, request_timeout=5)
    try:
        assert await whoami(client) == "admin"
    finally:
        await client.close()


async def test_in_cluster_with_projected_token_rotation(
    kubesim_allow: KubeSim, make_client: MakeClient, tmp_path: Path
) -> None:
    sim = kubesim_allow
    assert sim.admin_kubeconfig is not None
    admin = await make_client(sim.admin_kubeconfig)
    token1, secret1 = await bound_token(admin)
    token_file, ca_file = tmp_path / "token", tmp_path / "ca.crt"
    token_file.write_text(token1)
    ca_file.write_bytes(sim.ca_pem)
    files = InClusterFiles(
        token_file,
        ca_file,
        environ={"KUBERNETES_SERVICE_HOST": "127.0.0.1", "KUBERNETES_SERVICE_PORT": str(sim.port)},
    )
    client = await Cluster.connect(
        "in-cluster",
        kubeconfig=None,
        context=None,
        in_cluster=True,
        request_timeout=5,
        in_cluster_files=files,
    )
    try:
        assert client.server_url == sim.url and client.ca_pem == sim.ca_pem
        assert await whoami(client) == f"system:serviceaccount:{NS}:{SA}"
        # the kubelet rotates the projected token and the old one stops working
        token2, _ = await bound_token(admin)
        token_file.write_text(token2)
        assert await admin.secrets.delete(NS, secret1)
        assert await whoami(client) == f"system:serviceaccount:{NS}:{SA}"
    finally:
        await client.close()


PLUGIN = """
import json, pathlib, sys
pathlib.Path(sys.argv[2]).open("a").write("run\\n")
token = pathlib.Path(sys.argv[1]).read_text().strip()
print(json.dumps({"apiVersion": "client.authentication.k8s.io/v1", "kind": "ExecCredential",
                  "status": {"token": token}}))
"""


async def test_exec_plugin_rerun_after_401(
    kubesim_allow: KubeSim, make_client: MakeClient, tmp_path: Path
) -> None:
    sim = kubesim_allow
    assert sim.admin_kubeconfig is not None
    admin = await make_client(sim.admin_kubeconfig)
    token1, secret1 = await bound_token(admin)
    token_file, runs = tmp_path / "token", tmp_path / "runs"
    token_file.write_text(token1)
    plugin = tmp_path / "plugin.py"
    plugin.write_text(PLUGIN)
    config = yaml.safe_load(sim.admin_kubeconfig.read_text())
    config["users"] = [
        {
            "name": "exec",
            "user": {
                "exec": {
                    "apiVersion": "client.authentication.k8s.io/v1",
                    "command": sys.executable,
                    "args": [str(plugin), str(token_file), str(runs)],
                    "interactiveMode": "Never",
                }
            },
        }
    ]
    config["contexts"][0]["context"]["user"] = "exec"
    path = tmp_path / "exec.kubeconfig"
    write_private(path, yaml.safe_dump(config).encode())
    client = await make_client(path)
    for _ in range(3):
        assert await whoami(client) == f"system:serviceaccount:{NS}:{SA}"
    assert runs.read_text().count("run") == 1  # a credential without expiry is kept
    token2, _ = await bound_token(admin)
    token_file.write_text(token2)
    await admin.secrets.delete(NS, secret1)
    assert await whoami(client) == f"system:serviceaccount:{NS}:{SA}"
    assert runs.read_text().count("run") == 2


# -- proxies -------------------------------------------------------------------------------------------------------
class ConnectProxy:
    """A minimal HTTP CONNECT proxy that records the tunnels it opened."""

    def __init__(self) -> None:
        self.tunnels: list[str] = []
        self.auth: list[str] = []
        self.port = 0
        self._server: asyncio.Server | None = None

    async def __aenter__(self) -> ConnectProxy:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        assert self._server is not None
        self._server.close()
        await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = (await reader.readuntil(b"\r\n\r\n")).decode()
            method, target, _ = head.split("\r\n", 1)[0].split(" ", 2)
            for line in head.split("\r\n")[1:]:
                if line.lower().startswith("proxy-authorization:"):
                    self.auth.append(line.split(":", 1)[1].strip())
            if method != "CONNECT":
                writer.write(b"HTTP/1.1 405 Method Not Allowed\r\n\r\n")
                return
            self.tunnels.append(target)
            host, port = target.rsplit(":", 1)
            up_reader, up_writer = await asyncio.open_connection(host, int(port))
            writer.write(b"HTTP/1.1 200 Connection established\r\n\r\n")
            await writer.drain()

            async def pipe(src: asyncio.StreamReader, dst: asyncio.StreamWriter) -> None:
                with contextlib.suppress(ConnectionError):
                    while data := await src.read(65536):
                        dst.write(data)
                        await dst.drain()
                dst.close()

            await asyncio.gather(pipe(reader, up_writer), pipe(up_reader, writer))
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


@pytest.fixture
async def proxy() -> AsyncIterator[ConnectProxy]:
    async with ConnectProxy() as running:
        yield running


async def test_https_proxy_is_honoured(
    kubesim: KubeSim, make_client: MakeClient, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kubesim.admin_kubeconfig is not None
    monkeypatch.setenv("HTTPS_PROXY", f"http://user:secret@127.0.0.1:{proxy.port}")
    client = await make_client(kubesim.admin_kubeconfig)
    assert client.proxy == f"http://127.0.0.1:{proxy.port}"
    assert await whoami(client) == "admin"
    await client.accounts.ensure("default", "via-proxy")
    assert proxy.tunnels and set(proxy.tunnels) == {f"127.0.0.1:{kubesim.port}"}
    assert proxy.auth and proxy.auth[0] == "Basic dXNlcjpzZWNyZXQ="


async def test_no_proxy_bypasses(
    kubesim: KubeSim, make_client: MakeClient, proxy: ConnectProxy, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kubesim.admin_kubeconfig is not None
    monkeypatch.setenv("HTTPS_PROXY", f"http://127.0.0.1:{proxy.port}")
    monkeypatch.setenv("NO_PROXY", "localhost,127.0.0.1")
    client = await make_client(kubesim.admin_kubeconfig)
    assert client.proxy is None
    assert await whoami(client) == "admin"
    assert proxy.tunnels == []


async def test_kubeconfig_proxy_url_wins(
    kubesim: KubeSim, proxy: ConnectProxy, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    assert kubesim.admin_kubeconfig is not None
    monkeypatch.setenv("NO_PROXY", "*")
    config = yaml.safe_load(kubesim.admin_kubeconfig.read_text())
    config["clusters"][0]["cluster"]["proxy-url"] = f"http://127.0.0.1:{proxy.port}"
    path = tmp_path / "proxied.kubeconfig"
    write_private(path, json.dumps(config).encode())
    client = await Cluster.connect("x", kubeconfig=path, context=None, in_cluster=False, request_timeout=5)
    try:
        assert await whoami(client) == "admin"
    finally:
        await client.close()
    assert proxy.tunnels == [f"127.0.0.1:{kubesim.port}"]
