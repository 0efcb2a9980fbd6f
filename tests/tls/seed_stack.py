"""A broker whose every TLS connection uses certificates of the seed's openssl flow (tests/tls/seed_pki.py):
its serving certificate and callers signed by one openssl CA, the Kubernetes API (the simulator) serving with
a certificate under another, and an OIDC issuer (tests/oidc_provider.py) serving its keys under the broker CA. Runs in-process, so on
Python 3.13 every client context in it is 3.13's."""

from __future__ import annotations

import shutil
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

from oidc_provider import OidcProvider
from seed_pki import SeedPki

from broker.app import Broker
from kubesim import KubeSim, SimOptions

OIDC_AUDIENCE = "token-broker"

CONFIG = """\
[server]
listen = "127.0.0.1:0"
metrics_listen = "127.0.0.1:0"
tls_cert = "{pki.broker_cert}"
tls_key = "{pki.broker_key}"
client_ca = "{pki.broker_ca.cert}"

[[clusters]]
name = "seed"
kubeconfig = "{kubeconfig}"
request_timeout_seconds = 5

[[roles]]
name = "deployer"
service_account = "deployer"
namespaces = ["default"]
default_ttl = "15m"

[[grants]]
name = "ci"
groups = ["ci", "oidc"]
roles = ["deployer"]

[auth.mtls]
enabled = true

[[auth.oidc]]
issuer = "{issuer}"
audience = "{audience}"
ca_file = "{pki.broker_ca.cert}"
username_prefix = "oidc:"
groups = ["oidc"]
"""


@dataclass
class SeedStack:
    pki: SeedPki
    sim: KubeSim
    broker: Broker
    issuer: OidcProvider
    root: Path

    @property
    def broker_url(self) -> str:
        assert self.broker.listeners is not None
        return self.broker.listeners.api_url


@asynccontextmanager
async def seed_stack(root: Path) -> AsyncIterator[SeedStack]:
    pki = SeedPki.make(root / "pki")
    sim_dir = root / "sim"
    sim_dir.mkdir(parents=True)
    # the simulator keeps a CA it finds in its state directory: the cluster CA is the openssl one
    shutil.copy(pki.cluster_ca.cert, sim_dir / "ca.crt")
    shutil.copy(pki.cluster_ca.key, sim_dir / "ca.key")
    cert, key = pki.broker_ca.sign(root / "pki", "issuer", "/CN=issuer", san="IP:127.0.0.1")
    async with (
        OidcProvider(cert, key) as issuer,
        KubeSim(SimOptions(authorization="always-allow"), state_dir=sim_dir) as sim,
    ):
        kubeconfig = sim.write_kubeconfig(root / "broker.kubeconfig", cert=sim.client_cert("token-broker"))
        config = root / "broker.toml"
        config.write_text(
            CONFIG.format(pki=pki, kubeconfig=kubeconfig, issuer=issuer.url, audience=OIDC_AUDIENCE)
        )
        async with Broker(config) as broker:
            yield SeedStack(pki, sim, broker, issuer, root)
