"""Every outgoing TLS connection accepts the CA of the seed's openssl flow, as kubectl does — on Python 3.13
too, whose default context refuses it (`make test-py313` runs this module under 3.13): the CLI (`issue`), the
kubectl exec plugin (`credential`), the broker's fetch of an OIDC issuer's keys, the broker's Kubernetes
transport, and `decode --jwks-url`."""

from __future__ import annotations

import json
import socket
import ssl
import subprocess
import sys
import threading
from collections.abc import AsyncIterator, Iterator
from contextlib import contextmanager
from pathlib import Path

import aiohttp
import pytest
import yaml
from seed_pki import SeedCa, SeedPki
from seed_stack import OIDC_AUDIENCE, SeedStack, seed_stack
from support.processes import VENV_BIN, kubectl, token_broker

from broker._kits.tls import client_ssl_context
from broker.kube import Cluster
from kubesim import KubeSim, SimOptions

pytestmark = pytest.mark.py313


async def as_caller(
    stack: SeedStack, home: Path, command: str, *args: str
) -> subprocess.CompletedProcess[str]:
    """`token-broker COMMAND` as the seed caller (CN=jenkins/O=ci), trusting the seed broker CA."""
    pki = stack.pki
    credentials = [
        "--cacert",
        str(pki.broker_ca.cert),
        "--cert",
        str(pki.caller_cert),
        "--key",
        str(pki.caller_key),
    ]
    return await token_broker(command, "--broker", stack.broker_url, *credentials, *args, home=home)


@pytest.fixture
async def stack(tmp_path: Path) -> AsyncIterator[SeedStack]:
    async with seed_stack(tmp_path / "seed") as running:
        yield running


@contextmanager
def tls_server(cert: Path, key: Path) -> Iterator[int]:
    """A TLS listener that completes handshakes and hangs up; yields its port."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    listener = socket.create_server(("127.0.0.1", 0))
    listener.settimeout(0.2)
    stop = threading.Event()

    def serve() -> None:
        while not stop.is_set():
            try:
                conn, _ = listener.accept()
            except TimeoutError:
                continue
            conn.settimeout(5)
            try:
                context.wrap_socket(conn, server_side=True).close()
            except (ssl.SSLError, OSError):
                conn.close()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    try:
        yield listener.getsockname()[1]
    finally:
        stop.set()
        thread.join(5)
        listener.close()


def handshake(context: ssl.SSLContext, port: int) -> None:
    with (
        socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
        context.wrap_socket(raw, server_hostname="127.0.0.1"),
    ):
        pass


def test_seed_ca_is_accepted_like_kubectl_and_curl_accept_it(tmp_path: Path) -> None:
    ca = SeedCa.make(tmp_path, "seed-ca")
    cert, key = ca.sign(tmp_path, "server", "/CN=127.0.0.1", san="IP:127.0.0.1")
    with tls_server(cert, key) as port:
        if sys.version_info >= (3, 13):
            # the premise: Python's own default refuses a CA without keyUsage
            with pytest.raises(ssl.SSLCertVerificationError, match="key usage"):
                handshake(ssl.create_default_context(cafile=str(ca.cert)), port)
        context = client_ssl_context(cafile=ca.cert)
        handshake(context, port)
        assert context.verify_mode == ssl.CERT_REQUIRED and context.check_hostname
        assert not context.verify_flags & ssl.VERIFY_X509_STRICT
        # what is still refused: another CA, and a name the certificate does not carry
        other = SeedCa.make(tmp_path, "other-ca")
        with pytest.raises(ssl.SSLCertVerificationError, match="unable to get local issuer"):
            handshake(client_ssl_context(cafile=other.cert), port)
        with (
            socket.create_connection(("127.0.0.1", port), timeout=5) as raw,
            pytest.raises(ssl.SSLCertVerificationError, match="mismatch"),
        ):
            context.wrap_socket(raw, server_hostname="broker.example.com")
        curl = subprocess.run(
            ["curl", "-sS", "-o", "/dev/null", "--cacert", str(ca.cert), f"https://127.0.0.1:{port}/"],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
        assert "certificate" not in curl.stderr, curl.stderr  # the handshake passed; the hang-up is all


async def test_cli_issue_over_seed_tls(stack: SeedStack, tmp_path: Path) -> None:
    result = await as_caller(stack, tmp_path, "issue", "--role", "deployer")
    assert result.returncode == 0, result.stderr
    issued = json.loads(result.stdout)
    # the broker reached the cluster over the seed cluster CA and verified the token against its JWKS
    assert issued["service_account"] == {"namespace": "default", "name": "deployer"}


async def test_kubectl_exec_plugin_over_seed_tls(stack: SeedStack, tmp_path: Path) -> None:
    kubeconfig = tmp_path / "exec.kubeconfig"
    made = await as_caller(stack, tmp_path, "kubeconfig", "--out", str(kubeconfig))
    assert made.returncode == 0, made.stderr
    (user,) = yaml.safe_load(kubeconfig.read_text())["users"]
    assert Path(user["user"]["exec"]["command"]).parent == VENV_BIN  # this interpreter's plugin
    result = await kubectl(kubeconfig, "auth", "whoami", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "system:serviceaccount:default:deployer" in result.stdout


async def test_broker_fetches_oidc_keys_over_seed_tls(stack: SeedStack) -> None:
    context = client_ssl_context(cafile=stack.pki.broker_ca.cert)
    headers = {"Authorization": f"Bearer {stack.issuer.sign(aud=OIDC_AUDIENCE, sub='pipeline-7')}"}
    async with (
        aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=30)) as session,
        session.get(stack.broker_url + "/v1/whoami", headers=headers, ssl=context) as resp,
    ):
        body = await resp.json()
    assert resp.status == 200, body
    assert body["user"] == "oidc:pipeline-7" and body["method"] == "oidc"
    assert stack.issuer.jwks_fetches == 1


async def test_kube_transport_over_seed_cluster_ca(tmp_path: Path) -> None:
    pki = SeedPki.make(tmp_path / "pki")
    sim_dir = tmp_path / "sim"
    sim_dir.mkdir()
    (sim_dir / "ca.crt").write_bytes(pki.cluster_ca.cert.read_bytes())
    (sim_dir / "ca.key").write_bytes(pki.cluster_ca.key.read_bytes())
    async with KubeSim(SimOptions(authorization="always-allow"), state_dir=sim_dir) as sim:
        assert sim.ca_pem == pki.cluster_ca.cert.read_bytes()
        kubeconfig = sim.write_kubeconfig(tmp_path / "k", cert=sim.client_cert("token-broker"))
        async with await Cluster.connect(
            "seed", kubeconfig=kubeconfig, context=None, in_cluster=False, request_timeout=5
        ) as client:
            issuer, _ = await client.discovery.discover_issuer()
            assert issuer.startswith("https://127.0.0.1:")


async def test_decode_fetches_jwks_over_seed_tls(stack: SeedStack, tmp_path: Path) -> None:
    token = stack.issuer.sign(aud=OIDC_AUDIENCE, sub="pipeline-8")
    jwks = f"{stack.issuer.url}/jwks"
    result = await token_broker(
        "decode", token, "--jwks-url", jwks, "--cacert", str(stack.pki.broker_ca.cert), home=tmp_path
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "signature verified with the keys at" in result.stdout
