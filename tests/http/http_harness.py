"""A real broker HTTP edge over TLS (client certificates optional) in front of an in-memory issuer.

FakeIssuer is a test implementation of our own IssuerPort; everything else is the real stack: aiohttp server
and client, TLS with certificates from broker._kits.pki and from the openssl command line, the real authenticators.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import secrets
import ssl
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import aiohttp
import pytest
from support.openssl import client_cert, make_ca
from support.served import TestPki, make_pki, request, serve

from broker._kits.pki import CertificateAuthority
from broker.callers import ApiKeyAuthenticator, AuthenticatorChain, MtlsAuthenticator
from broker.domain.errors import ErrorKind, forbidden
from broker.domain.identity import Caller
from broker.http import build_http_app
from broker.usecases.ports import IssuedToken, IssueRequest, RoleInfo

API_KEY = "tb_build_Zk3q9v7PnX2sLr8Wd4Hc"
API_KEY_GROUPS = ("ci",)
MAX_BODY = 4096
CLUSTER_CA_PEM = b"-----BEGIN CERTIFICATE-----\nMIIBclusterca\n-----END CERTIFICATE-----\n"


def b64url(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def jwt_like() -> str:
    return ".".join(b64url(secrets.token_bytes(n)) for n in (24, 96, 64))


ROLES = {
    "deployer": RoleInfo(
        "deployer", "deploy apps", "staging", ("ci", "apps"), 900, 3600, "token-request", True
    ),
    "viewer": RoleInfo("viewer", "read only", "staging", ("ci",), 600, 600, "token-request", False),
    "legacy": RoleInfo("legacy", "old Jenkins flow", "staging", ("ci",), 0, 0, "legacy-secret", True),
}


@dataclass
class FakeIssuer:
    """Issues JWT-shaped random tokens; `fail_with` makes every issuance raise it; `failing` drives /readyz."""

    fail_with: BaseException | None = None
    failing: list[str] = field(default_factory=list)
    ready_error: BaseException | None = None
    requests: list[tuple[Caller, IssueRequest]] = field(default_factory=list)
    issued: list[str] = field(default_factory=list)

    async def issue(self, caller: Caller, req: IssueRequest) -> IssuedToken:
        self.requests.append((caller, req))
        if self.fail_with is not None:
            raise self.fail_with
        if req.role not in ROLES:
            raise forbidden(ErrorKind.UNKNOWN_ROLE, "not allowed", reason=f"unknown role {req.role}")
        token = jwt_like()
        self.issued.append(token)
        now = datetime.now(UTC).replace(microsecond=0)
        role = ROLES[req.role]
        return IssuedToken(
            token=token,
            token_id=uuid.uuid4().hex,
            jti=str(uuid.uuid4()),
            issued_at=now,
            expires_at=(
                None
                if role.mode == "legacy-secret"
                else now + timedelta(seconds=req.ttl_seconds or role.default_ttl)
            ),
            namespace=req.namespace or role.namespaces[0],
            service_account=f"tb-{req.role}",
            audiences=req.audiences or ("https://kubernetes.default.svc.cluster.local",),
            role=req.role,
            cluster=role.cluster,
            server_url="https://10.0.0.1:6443",
            ca_pem=CLUSTER_CA_PEM,
            warnings=("requested expiration shortened",) if (req.ttl_seconds or 0) > role.max_ttl else (),
        )

    def usable_roles(self, caller: Caller) -> list[RoleInfo]:
        if "ci" in caller.groups:
            return list(ROLES.values())
        return [ROLES["viewer"]]

    async def ready(self) -> list[str]:
        if self.ready_error is not None:
            raise self.ready_error
        return list(self.failing)


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> TestPki:
    callers = {"jenkins": ("jenkins", ["ci", "deployers"]), "alice": ("alice", ["ops"])}
    pki = make_pki(tmp_path_factory.mktemp("pki"), callers)
    pki.write_client("stranger", "mallory", ["ci"], ca=CertificateAuthority.generate("untrusted-ca"))
    # the manual flow an administrator follows with openssl, with its own CA
    ossl_ca = make_ca(pki.directory, "ossl-ca", "/CN=ossl-ca")
    client_cert(pki.directory, *ossl_ca, "/CN=jenkins/O=ci", "ossl")
    client_cert(pki.directory, *ossl_ca, "/O=ci", "nocn")
    # the broker trusts both client CAs
    pki.path("client-cas.crt").write_bytes(pki.client_ca.cert_pem + ossl_ca[0].read_bytes())
    return pki


@dataclass
class Broker:
    url: str
    issuer: FakeIssuer
    chain: AuthenticatorChain
    pki: TestPki
    session: aiohttp.ClientSession

    def context(self, cert: str | None = None) -> ssl.SSLContext:
        return self.pki.client_context(cert)

    async def call(
        self,
        method: str,
        path: str,
        *,
        cert: str | None = None,
        headers: dict[str, str] | None = None,
        json_body: Any = None,
        data: bytes | str | None = None,
    ) -> tuple[aiohttp.ClientResponse, bytes]:
        ctx = self.context(cert)
        url = self.url + path
        return await request(
            self.session, method, url, ssl_context=ctx, headers=headers, json_body=json_body, data=data
        )


@pytest.fixture
async def broker(pki: TestPki) -> AsyncIterator[Broker]:
    issuer = FakeIssuer()
    chain = AuthenticatorChain(
        [
            MtlsAuthenticator(),
            ApiKeyAuthenticator(
                [("build-bot", hashlib.sha256(API_KEY.encode()).hexdigest(), API_KEY_GROUPS)]
            ),
        ]
    )
    app = build_http_app(authenticator=chain, issuance=issuer, max_body_bytes=MAX_BODY)
    runner, url = await serve(app, pki, client_cas="client-cas.crt")
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Broker(url, issuer, chain, pki, session)
    await runner.cleanup()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)
