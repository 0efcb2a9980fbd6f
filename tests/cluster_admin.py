"""The cluster admin (CN=admin, O=system:masters) over the REST API, for tests that set up or inspect either
backend the way an administrator with kubectl would — never through the simulator's in-memory store."""

from __future__ import annotations

import asyncio
import ssl
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from broker._kits.pki import IssuedCert, write_private
from kubesim.pipeline import AuditEvent


class Cluster(Protocol):
    @property
    def url(self) -> str: ...

    @property
    def ca_pem(self) -> bytes: ...

    @property
    def audit_events(self) -> list[AuditEvent]: ...

    def client_cert(self, cn: str, groups: list[str] | tuple[str, ...] = ()) -> IssuedCert: ...


def client_ssl(cluster: Cluster, cert: IssuedCert | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(cadata=cluster.ca_pem.decode())
    if cert is not None:
        with tempfile.TemporaryDirectory(prefix="admin-") as tmp:
            cert_file, key_file = Path(tmp) / "tls.crt", Path(tmp) / "tls.key"
            cert_file.write_bytes(cert.cert_pem)
            write_private(key_file, cert.key_pem)
            context.load_cert_chain(cert_file, key_file)
    return context


class ClusterAdmin:
    def __init__(self, cluster: Cluster) -> None:
        self.cluster = cluster
        self._ssl = client_ssl(cluster, cluster.client_cert("admin", ["system:masters"]))

    async def request(
        self, method: str, path: str, body: Any = None, *, params: dict[str, str] | None = None
    ) -> tuple[int, Any]:
        timeout = aiohttp.ClientTimeout(total=15)
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.request(method, self.cluster.url + path, json=body, params=params, ssl=self._ssl) as resp,
        ):
            return resp.status, await resp.json(content_type=None)

    async def create(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        status, answer = await self.request("POST", path, body)
        assert status == 201, answer
        return dict(answer)

    async def get(self, path: str) -> dict[str, Any] | None:
        status, answer = await self.request("GET", path)
        if status == 404:
            return None
        assert status == 200, answer
        return dict(answer)

    async def list(self, path: str, selector: str | None = None) -> list[dict[str, Any]]:
        status, answer = await self.request(
            "GET", path, params={"labelSelector": selector} if selector else None
        )
        assert status == 200, answer
        return list(answer["items"])

    async def namespace(self, name: str, labels: dict[str, str] | None = None) -> None:
        status, answer = await self.request(
            "POST",
            "/api/v1/namespaces",
            {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}},
        )
        assert status in (201, 409), answer


async def wait_for_request(
    cluster: Cluster, matches: Callable[[AuditEvent], bool], *, timeout: float = 30.0
) -> AuditEvent:
    """The first request the API server completed that `matches` (the real server logs it once answered)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for event in cluster.audit_events:
            if matches(event):
                return event
        await asyncio.sleep(0.005)
    raise AssertionError(f"no matching request reached the API server within {timeout} s")
