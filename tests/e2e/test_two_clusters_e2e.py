"""One broker, two clusters: a role names its cluster, and each cluster accepts only its own tokens."""

from __future__ import annotations

import json
import ssl
from pathlib import Path

import aiohttp

from broker._kits.pki import CertificateAuthority, write_private
from broker.app import Broker
from kubesim import KubeSim, SimOptions

CONFIG = """
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
tls_cert = "{root}/server.crt"
tls_key = "{root}/server.key"
client_ca = "{root}/client-ca.crt"

[[clusters]]
name = "staging"
kubeconfig = "{root}/staging.kubeconfig"

[[clusters]]
name = "production"
kubeconfig = "{root}/production.kubeconfig"

[[roles]]
name = "deployer-staging"
cluster = "staging"
service_account = "deployer"
namespaces = ["default"]
default_ttl = "10m"

[[roles]]
name = "deployer-production"
cluster = "production"
service_account = "deployer"
namespaces = ["default"]
default_ttl = "10m"

[[grants]]
groups = ["ci"]
roles = ["*"]
"""


async def test_each_cluster_accepts_only_its_own_tokens(kubectl, tmp_path: Path) -> None:
    root = tmp_path
    ca = CertificateAuthority.generate("server CA")
    serving = ca.issue_server_cert(["127.0.0.1"])
    (root / "server.crt").write_bytes(serving.cert_pem)
    write_private(root / "server.key", serving.key_pem)
    clients = CertificateAuthority.generate("client CA")
    (root / "client-ca.crt").write_bytes(clients.cert_pem)
    caller = clients.issue_client_cert("jenkins", ["ci"])
    (root / "jenkins.crt").write_bytes(caller.cert_pem)
    write_private(root / "jenkins.key", caller.key_pem)

    async with (
        KubeSim(SimOptions(issuer="https://staging.example"), state_dir=root / "staging") as staging,
        KubeSim(SimOptions(issuer="https://production.example"), state_dir=root / "production") as production,
    ):
        for name, sim in (("staging", staging), ("production", production)):
            sim.write_kubeconfig(
                root / f"{name}.kubeconfig", cert=sim.client_cert("admin", ["system:masters"])
            )
        (root / "broker.toml").write_text(CONFIG.format(root=root))
        async with Broker(root / "broker.toml") as broker:
            assert broker.listeners is not None
            ctx = ssl.create_default_context(cadata=ca.cert_pem.decode())
            ctx.load_cert_chain(str(root / "jenkins.crt"), str(root / "jenkins.key"))
            tokens = {}
            async with aiohttp.ClientSession(
                trust_env=False, timeout=aiohttp.ClientTimeout(total=30)
            ) as session:
                for cluster in ("staging", "production"):
                    url = broker.listeners.api_url + "/v1/tokens"
                    async with session.post(url, json={"role": f"deployer-{cluster}"}, ssl=ctx) as resp:
                        body = json.loads(await resp.text())
                        assert resp.status == 201, body
                        assert body["cluster"] == cluster
                        tokens[cluster] = body["token"]

            for cluster, sim in (("staging", staging), ("production", production)):
                for token_cluster, token in tokens.items():
                    kubeconfig = root / f"{cluster}-with-{token_cluster}.kubeconfig"
                    sim.write_kubeconfig(kubeconfig, token=token)
                    result = await kubectl(kubeconfig, "auth", "whoami", home=root)
                    if token_cluster == cluster:
                        assert result.returncode == 0, result.stderr
                        assert "system:serviceaccount:default:deployer" in result.stdout
                    else:
                        assert result.returncode != 0
                        assert "Unauthorized" in result.stderr
