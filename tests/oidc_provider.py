"""A small OIDC provider on https://127.0.0.1 for end-to-end tests: discovery, a JWKS, RS256 tokens with any
claims, and the token endpoint GitHub Actions gives its jobs (ACTIONS_ID_TOKEN_REQUEST_URL). It serves the
certificate it is given, so a test decides which CA a client must trust. (tests/callers/oidc_issuer.py is the
richer one the OIDC caller tests use: key rotation, faults, counters.)"""

from __future__ import annotations

import json
import secrets
import ssl
import time
import uuid
from pathlib import Path
from typing import Any

import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import rsa


class OidcProvider:
    def __init__(self, cert_file: Path, key_file: Path) -> None:
        self._key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self._kid = uuid.uuid4().hex[:16]
        self._tls = (cert_file, key_file)
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.jwks_fetches = 0
        # what a GitHub runner's job holds: a bearer for the token endpoint, and claims for its tokens
        self.request_token = secrets.token_urlsafe(16)
        self.job_claims: dict[str, Any] = {}

    async def __aenter__(self) -> OidcProvider:
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        app.router.add_get("/token", self._token)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        server_ssl = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        server_ssl.load_cert_chain(*self._tls)
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def sign(self, **claims: Any) -> str:
        now = int(time.time())
        payload = {
            "iss": self.url,
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            **claims,
        }
        return jwt.encode(payload, self._key, algorithm="RS256", headers={"kid": self._kid})

    async def _discovery(self, _request: web.Request) -> web.Response:
        return web.json_response({"issuer": self.url, "jwks_uri": f"{self.url}/jwks"})

    async def _jwks(self, _request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        jwk = json.loads(jwt.algorithms.RSAAlgorithm.to_jwk(self._key.public_key()))
        jwk.update(kid=self._kid, use="sig", alg="RS256")
        return web.json_response({"keys": [jwk]})

    async def _token(self, request: web.Request) -> web.Response:
        """GitHub's ID token endpoint: `GET $ACTIONS_ID_TOKEN_REQUEST_URL&audience=…` with the request token."""
        if request.headers.get("Authorization", "").lower() != f"bearer {self.request_token}".lower():
            return web.json_response({"message": "bad request token"}, status=401)
        audience = request.query.get("audience", self.url)
        return web.json_response({"value": self.sign(aud=audience, **self.job_claims)})
