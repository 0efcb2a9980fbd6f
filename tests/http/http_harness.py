"""A real broker HTTP edge over TLS (client certificates optional) in front of an in-memory issuer.

FakeIssuer is a test implementation of our own IssuerPort; everything else is the real stack: aiohttp server
and client, TLS with certificates from broker._kits.pki and from the openssl command line, the real authenticators.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import json
import secrets
import ssl
import subprocess
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from broker._kits.pki import CertificateAuthority
from broker.callers import ApiKeyAuthenticator, AuthenticatorChain, MtlsAuthenticator
from broker.domain.errors import ErrorKind, forbidden
from broker.domain.identity import Caller
from broker.http import RedactingAccessLogger, build_http_app, server_ssl_context
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


def openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


@dataclass(frozen=True)
class Pki:
    directory: Path
    server_ca: CertificateAuthority
    client_ca: CertificateAuthority

    def path(self, name: str) -> Path:
        return self.directory / name

    def client_context(self, cert: str | None = None) -> ssl.SSLContext:
        """A client TLS context trusting the server CA; with `cert`, presenting <cert>.crt/<cert>.key."""
        ctx = ssl.create_default_context(cafile=str(self.path("server-ca.crt")))
        if cert is not None:
            ctx.load_cert_chain(self.path(f"{cert}.crt"), self.path(f"{cert}.key"))
        return ctx


@pytest.fixture(scope="session")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    directory = tmp_path_factory.mktemp("pki")
    server_ca = CertificateAuthority.generate("test-server-ca")
    client_ca = CertificateAuthority.generate("test-client-ca")
    served = server_ca.issue_server_cert(["127.0.0.1", "localhost"])
    files = {
        "server-ca.crt": server_ca.cert_pem,
        "server.crt": served.cert_pem,
        "server.key": served.key_pem,
    }
    for name, (cn, orgs) in {
        "jenkins": ("jenkins", ["ci", "deployers"]),
        "alice": ("alice", ["ops"]),
    }.items():
        issued = client_ca.issue_client_cert(cn, orgs)
        files[f"{name}.crt"] = issued.cert_pem
        files[f"{name}.key"] = issued.key_pem
    stranger = CertificateAuthority.generate("untrusted-ca").issue_client_cert("mallory", ["ci"])
    files["stranger.crt"] = stranger.cert_pem
    files["stranger.key"] = stranger.key_pem
    for name, data in files.items():
        (directory / name).write_bytes(data)
    # the manual flow an administrator follows with openssl, with its own CA
    openssl("genrsa", "-out", "ossl-ca.key", "2048", cwd=directory)
    openssl(
        "req",
        "-x509",
        "-new",
        "-key",
        "ossl-ca.key",
        "-subj",
        "/CN=ossl-ca",
        "-days",
        "1",
        "-out",
        "ossl-ca.crt",
        cwd=directory,
    )
    for stem, subject in {"ossl": "/CN=jenkins/O=ci", "nocn": "/O=ci"}.items():
        openssl("genrsa", "-out", f"{stem}.key", "2048", cwd=directory)
        openssl("req", "-new", "-key", f"{stem}.key", "-subj", subject, "-out", f"{stem}.csr", cwd=directory)
        openssl(
            "x509", "-req", "-in", f"{stem}.csr", "-CA", "ossl-ca.crt", "-CAkey", "ossl-ca.key", "-CAcreateserial",
            "-out", f"{stem}.crt", "-days", "1", cwd=directory,
        )  # fmt: skip
    # the broker trusts both client CAs
    (directory / "client-cas.crt").write_bytes(client_ca.cert_pem + (directory / "ossl-ca.crt").read_bytes())
    return Pki(directory, server_ca, client_ca)


@dataclass
class Broker:
    url: str
    issuer: FakeIssuer
    chain: AuthenticatorChain
    pki: Pki
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
        kwargs: dict[str, Any] = {"headers": headers or {}, "ssl": self.context(cert)}
        if json_body is not None:
            kwargs["json"] = json_body
        if data is not None:
            kwargs["data"] = data
        async with self.session.request(method, self.url + path, **kwargs) as response:
            return response, await response.read()


@pytest.fixture
async def broker(pki: Pki) -> AsyncIterator[Broker]:
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
    runner = web.AppRunner(app, access_log_class=RedactingAccessLogger)
    await runner.setup()
    ssl_ctx = server_ssl_context(pki.path("server.crt"), pki.path("server.key"), pki.path("client-cas.crt"))
    site = web.TCPSite(runner, "127.0.0.1", 0, ssl_context=ssl_ctx)
    await site.start()
    port = runner.addresses[0][1]
    timeout = aiohttp.ClientTimeout(total=15)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        yield Broker(f"https://127.0.0.1:{port}", issuer, chain, pki, session)
    await runner.cleanup()


async def wait_for(predicate: Callable[[], bool], timeout: float = 5.0) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.01)


def assert_problem(response: aiohttp.ClientResponse, body: bytes, status: int) -> dict[str, Any]:
    """Every error is application/problem+json with type, title, status and detail, and a request id."""
    assert response.status == status, body
    assert response.content_type == "application/problem+json", response.content_type
    doc = json.loads(body)
    assert isinstance(doc, dict)
    assert {"type", "title", "status", "detail"} <= doc.keys()
    assert doc["status"] == status
    assert isinstance(doc["title"], str) and doc["title"]
    assert isinstance(doc["detail"], str) and doc["detail"]
    assert response.headers["X-Request-ID"] == doc["request_id"]
    return doc
