"""A broker whose every TLS connection uses certificates of the seed's openssl flow (tests/tls/seed_pki.py):
its serving certificate and callers signed by one openssl CA, the Kubernetes API (the simulator) serving with
a certificate under another, and an OIDC issuer serving its keys under the broker CA. Runs in-process, so on
Python 3.13 every client context in it is 3.13's."""

from __future__ import annotations

import json
import shutil
import ssl
import sys
import time
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa
from seed_pki import SeedPki

from broker.app import Broker
from broker.testing.kubesim import KubeSim, SimOptions

# the token-broker of the interpreter running the tests: .venv's, or .venv-3.13's under `make test-py313`
VENV_BIN = Path(sys.executable).parent
KUBECTL = "/usr/bin/kubectl"
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


class SeedIssuer:
    """An OIDC provider (discovery + JWKS) on https://127.0.0.1, serving a certificate of the seed broker CA."""

    def __init__(self, pki: SeedPki, workdir: Path) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = uuid.uuid4().hex[:16]
        self._cert, self._key_file = pki.broker_ca.sign(workdir, "issuer", "/CN=issuer", san="IP:127.0.0.1")
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.jwks_fetches = 0

    async def start(self) -> None:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        server_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ssl.load_cert_chain(self._cert, self._key_file)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _discovery(self, _request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

    async def _jwks(self, _request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update(kid=self._kid, use="sig", alg="RS256")
        return web.json_response({"keys": [jwk]})

    def token(self, subject: str) -> str:
        now = int(time.time())
        claims = {"iss": self.url, "aud": OIDC_AUDIENCE, "sub": subject, "iat": now, "exp": now + 300}
        return jwt.encode(claims, self._key, algorithm="RS256", headers={"kid": self._kid})


@dataclass
class SeedStack:
    pki: SeedPki
    sim: KubeSim
    broker: Broker
    issuer: SeedIssuer
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
    issuer = SeedIssuer(pki, root / "pki")
    await issuer.start()
    try:
        async with KubeSim(SimOptions(authorization="always-allow"), state_dir=sim_dir) as sim:
            kubeconfig = sim.write_kubeconfig(
                root / "broker.kubeconfig", cert=sim.client_cert("token-broker")
            )
            config = root / "broker.toml"
            config.write_text(
                CONFIG.format(pki=pki, kubeconfig=kubeconfig, issuer=issuer.url, audience=OIDC_AUDIENCE)
            )
            async with Broker(config) as broker:
                yield SeedStack(pki, sim, broker, issuer, root)
    finally:
        await issuer.stop()
