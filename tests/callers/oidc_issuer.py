"""A real OIDC issuer on loopback for the caller tests, and a broker HTTP edge in front of a recording issuer.

`LoopbackIssuer` is an aiohttp app over HTTPS (its own CA) serving /.well-known/openid-configuration and /jwks,
signing RS256 and ES256 tokens with keys it can rotate. It counts what it serves and can be made to fail
(503) or to hang. `RecordingIssuer` implements our IssuerPort: it runs the real Policy and records every
issue() call, so a test can assert that a refused caller never reached issuance.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import ssl
import time
import uuid
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import jwt
from aiohttp import web
from cryptography.hazmat.primitives.asymmetric import ec, rsa

from broker._kits.pki import CertificateAuthority
from broker.app import wiring
from broker.callers import AuthenticatorChain, OidcIssuer, OidcSettings
from broker.callers.base import Authenticator
from broker.callers.json_fetch import JsonFetcher
from broker.domain.identity import Caller
from broker.http import build_http_app
from broker.policy import Policy
from broker.settings import BrokerConfig
from broker.usecases.ports import IssuedToken, IssueRequest, RoleInfo

AUDIENCE = "token-broker"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def b64json(value: Any) -> str:
    return b64url(json.dumps(value, separators=(",", ":")).encode())


class Clock:
    """A monotonic clock the test moves by hand (JWKS cache lifetimes and refetch cooldown)."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@dataclass
class SigningKey:
    alg: str
    kid: str
    private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey

    @classmethod
    def generate(cls, alg: str, kid: str | None = None) -> SigningKey:
        private: rsa.RSAPrivateKey | ec.EllipticCurvePrivateKey
        if alg.startswith("RS"):
            private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        else:
            private = ec.generate_private_key(ec.SECP256R1())
        return cls(alg, kid or uuid.uuid4().hex[:16], private)

    def jwk(self) -> dict[str, Any]:
        algorithm = jwt.algorithms.RSAAlgorithm if self.alg.startswith("RS") else jwt.algorithms.ECAlgorithm
        jwk: dict[str, Any] = json.loads(algorithm.to_jwk(self.private.public_key()))
        jwk.update({"kid": self.kid, "use": "sig", "alg": self.alg})
        return jwk


@dataclass
class LoopbackIssuer:
    """An OIDC provider on https://127.0.0.1:<port>. `url` is both its issuer and its base URL."""

    ca: CertificateAuthority
    workdir: Path
    keys: list[SigningKey] = field(default_factory=list)
    max_age: int = 300
    # fault switches
    jwks_status: int = 200
    hang: bool = False
    # what was served
    jwks_fetches: int = 0
    discovery_fetches: int = 0
    url: str = ""
    _runner: web.AppRunner | None = None

    @property
    def current(self) -> SigningKey:
        return self.keys[-1]

    def client_ssl(self) -> ssl.SSLContext:
        return ssl.create_default_context(cadata=self.ca.cert_pem.decode())

    async def start(self) -> LoopbackIssuer:
        if not self.keys:
            self.keys = [SigningKey.generate("RS256"), SigningKey.generate("ES256")]
        app = web.Application()
        app.router.add_get("/.well-known/openid-configuration", self._discovery)
        app.router.add_get("/jwks", self._jwks)
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        served = self.ca.issue_server_cert(["127.0.0.1", "localhost"])
        self.workdir.mkdir(parents=True, exist_ok=True)
        (self.workdir / "tls.crt").write_bytes(served.cert_pem)
        (self.workdir / "tls.key").write_bytes(served.key_pem)
        server_ssl = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        server_ssl.load_cert_chain(self.workdir / "tls.crt", self.workdir / "tls.key")
        site = web.TCPSite(self._runner, "127.0.0.1", 0, ssl_context=server_ssl)
        await site.start()
        self.url = f"https://127.0.0.1:{self._runner.addresses[0][1]}"
        return self

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    async def _discovery(self, request: web.Request) -> web.Response:
        self.discovery_fetches += 1
        doc = {
            "issuer": self.url,
            "jwks_uri": f"{self.url}/jwks",
            "response_types_supported": ["id_token"],
            "subject_types_supported": ["public"],
            "id_token_signing_alg_values_supported": sorted({k.alg for k in self.keys}),
        }
        return web.json_response(doc, headers={"Cache-Control": "public, max-age=3600"})

    async def _jwks(self, request: web.Request) -> web.Response:
        self.jwks_fetches += 1
        if self.hang:
            await asyncio.sleep(30)
        if self.jwks_status != 200:
            return web.Response(status=self.jwks_status, text="unavailable")
        return web.json_response(
            {"keys": [k.jwk() for k in self.keys]},
            content_type="application/jwk-set+json",
            headers={"Cache-Control": f"public, max-age={self.max_age}"},
        )

    def rotate(self, alg: str = "RS256") -> SigningKey:
        """A new key signs from now on; the old ones leave the key set (a provider that rotated hard)."""
        key = SigningKey.generate(alg)
        self.keys = [key]
        return key

    def key(self, alg: str) -> SigningKey:
        return next(k for k in reversed(self.keys) if k.alg == alg)

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        base: dict[str, Any] = {
            "iss": self.url,
            "aud": AUDIENCE,
            "sub": "project_path:platform/app:ref_type:branch:ref:main",
            "iat": now,
            "nbf": now,
            "exp": now + 300,
            "jti": uuid.uuid4().hex,
            "project_path": "platform/app",
            "ref": "main",
            "ref_protected": True,
            "groups": ["platform", "release"],
        }
        base.update(overrides)
        return {k: v for k, v in base.items() if v is not None}

    def sign(
        self, claims: Mapping[str, Any] | None = None, *, key: SigningKey | None = None, **overrides: Any
    ) -> str:
        key = key or self.key("RS256")
        payload = dict(claims) if claims is not None else self.claims(**overrides)
        return jwt.encode(payload, key.private, algorithm=key.alg, headers={"kid": key.kid})


@dataclass
class RecordingIssuer:
    """IssuerPort over the real Policy: decides, records, returns a JWT-shaped dummy. Never talks to a cluster."""

    policy: Policy
    requests: list[tuple[Caller, IssueRequest]] = field(default_factory=list)

    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        self.requests.append((caller, req))
        grant = self.policy.decide(caller, req.role, req.namespace, req.ttl_seconds, req.audiences, {})
        now = datetime.now(UTC).replace(microsecond=0)
        return IssuedToken(
            token=".".join(b64url(uuid.uuid4().bytes) for _ in range(3)),
            token_id=uuid.uuid4().hex,
            jti=str(uuid.uuid4()),
            issued_at=now,
            expires_at=now + timedelta(seconds=grant.ttl_seconds),
            namespace=grant.namespace,
            service_account=grant.role.service_account,
            audiences=grant.audiences,
            role=grant.role.name,
            cluster=grant.role.cluster,
            server_url="https://10.0.0.1:6443",
            ca_pem=None,
        )

    def usable_roles(self, caller: Caller) -> list[RoleInfo]:
        return [
            RoleInfo(
                v.name,
                v.description,
                v.cluster,
                v.namespaces,
                v.default_ttl or 0,
                v.max_ttl or 0,
                v.mode,
                v.revocable,
            )
            for v in self.policy.usable_roles(caller)
        ]

    async def ready(self) -> list[str]:
        return []


def policy_from(
    roles: Sequence[Mapping[str, Any]], grants: Sequence[Mapping[str, Any]], **auth: Any
) -> Policy:
    cfg = BrokerConfig.model_validate(
        {
            "server": {"tls_cert": "c", "tls_key": "k", "client_ca": "ca"},
            "clusters": [{"name": "dev", "in_cluster": True}],
            "roles": list(roles),
            "grants": list(grants),
            "auth": {"oidc": [{"issuer": "https://127.0.0.1", "audience": AUDIENCE}], **auth},
        }
    )
    return wiring.policy_from(cfg)


def settings_for(issuer: LoopbackIssuer, **kw: Any) -> OidcSettings:
    kw.setdefault("username_prefix", "gitlab:")
    kw.setdefault("groups", ("gitlab",))
    return OidcSettings(issuer=issuer.url, audience=AUDIENCE, **kw)


def oidc_issuer(
    issuer: LoopbackIssuer, clock: Clock, *, timeout: float = 5.0, refetch_cooldown: float = 10.0, **kw: Any
) -> OidcIssuer:
    return OidcIssuer(
        settings_for(issuer, **kw),
        JsonFetcher(ssl_context=issuer.client_ssl(), timeout=timeout),
        refetch_cooldown=refetch_cooldown,
        monotonic=clock,
    )


@dataclass
class Edge:
    """The broker's HTTP edge on loopback (plain HTTP: TLS is tested elsewhere) with a recording issuer."""

    url: str
    issuer: RecordingIssuer
    session: aiohttp.ClientSession

    async def call(
        self, method: str, path: str, token: str | None = None, json_body: Any = None
    ) -> tuple[int, dict[str, str], Any]:
        headers = {"Authorization": f"Bearer {token}"} if token is not None else {}
        async with self.session.request(method, self.url + path, headers=headers, json=json_body) as resp:
            raw = await resp.read()
            try:
                body = json.loads(raw)
            except ValueError:
                body = raw.decode(errors="replace")
            return resp.status, dict(resp.headers), body

    async def token(
        self, bearer: str, role: str = "deployer", namespace: str | None = "ci-builds"
    ) -> tuple[int, dict[str, str], Any]:
        return await self.call("POST", "/v1/tokens", bearer, {"role": role, "namespace": namespace})


@contextlib.asynccontextmanager
async def serve_edge(authenticators: Sequence[Authenticator], policy: Policy) -> AsyncIterator[Edge]:
    issuer = RecordingIssuer(policy)
    app = build_http_app(
        authenticator=AuthenticatorChain(authenticators),
        issuance=issuer,
        max_body_bytes=4096,
    )
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=20), trust_env=False) as session:
        yield Edge(f"http://127.0.0.1:{port}", issuer, session)
    await runner.cleanup()


ROLES: list[dict[str, Any]] = [
    {"name": "deployer", "service_account": "deployer", "namespaces": ["ci-*"], "max_ttl": "1h"},
    {"name": "releaser", "service_account": "releaser", "namespaces": ["prod"], "max_ttl": "1h"},
]
GRANTS: list[dict[str, Any]] = [
    {
        "name": "ci-platform",
        "groups": ["gitlab"],
        "roles": ["deployer"],
        "namespaces": ["ci-*"],
        "claims": {"project_path": "platform/*"},
    },
    {
        "name": "release-protected",
        "groups": ["gitlab"],
        "roles": ["releaser"],
        "claims": {"project_path": ["platform/app", "platform/api"], "ref_protected": "true"},
    },
]
