"""The same request to the simulator and to the real kube-apiserver, and their answers compared after the values
that differ by nature (uids, resource versions, times, tokens, addresses) are replaced by placeholders."""

from __future__ import annotations

import base64
import json
import re
import subprocess
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp
from backends import kubectl_binary
from cluster_admin import Cluster, client_ssl
from support.processes import kubectl

TIMEOUT = aiohttp.ClientTimeout(total=15)
ADMIN = ("admin", ("system:masters",))
_UUID = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
_TIME = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})")
_JWT = re.compile(r"eyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+")
# fields whose values are the server's own: compared for presence, not value
_OPAQUE_KEYS = {"uid", "resourceVersion", "creationTimestamp", "renewTime", "acquireTime", "generation"}
# server-side field management, which the simulator does not implement (a documented difference)
_DROPPED_KEYS = {"managedFields"}
# headers the broker reads
HEADERS = ("content-type", "cache-control", "warning", "retry-after")


@dataclass
class Answer:
    status: int
    headers: dict[str, str]
    body: Any

    @property
    def token(self) -> str:
        return str(self.body["status"]["token"])


@dataclass
class Peer:
    name: str
    cluster: Cluster
    _contexts: dict[tuple[str, tuple[str, ...]], Any] = field(default_factory=dict)
    _sessions: dict[tuple[str, tuple[str, ...]], aiohttp.ClientSession] = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.cluster.url

    def _ssl(self, user: tuple[str, tuple[str, ...]] | None) -> Any:
        key = user or ("", ())
        if key not in self._contexts:
            cert = None if user is None else self.cluster.client_cert(user[0], list(user[1]))
            self._contexts[key] = client_ssl(self.cluster, cert)
        return self._contexts[key]

    def _session(self, user: tuple[str, tuple[str, ...]] | None) -> aiohttp.ClientSession:
        """One keep-alive session per identity (a TLS handshake per request would be most of a test's time)."""
        key = user or ("", ())
        if key not in self._sessions:
            connector = aiohttp.TCPConnector(ssl=self._ssl(user))
            self._sessions[key] = aiohttp.ClientSession(timeout=TIMEOUT, trust_env=False, connector=connector)
        return self._sessions[key]

    async def close(self) -> None:
        for session in self._sessions.values():
            await session.close()
        self._sessions.clear()

    async def call(
        self,
        method: str,
        path: str,
        body: Any = None,
        *,
        user: tuple[str, tuple[str, ...]] | None = ADMIN,
        token: str | None = None,
        headers: dict[str, str] | None = None,
    ) -> Answer:
        """As a client-certificate user, or with a bearer token (user ignored), or anonymous (user=None)."""
        sent = {"Accept": "application/json", **(headers or {})}
        if token is not None:
            sent["Authorization"] = f"Bearer {token}"
            user = None
        async with self._session(user).request(method, self.url + path, json=body, headers=sent) as resp:
            text = await resp.text()
            try:
                parsed: Any = json.loads(text)
            except ValueError:
                parsed = text
            kept = {h: resp.headers[h] for h in HEADERS if h in resp.headers}
            return Answer(resp.status, kept, parsed)

    async def watch(
        self,
        path: str,
        until: Callable[[dict[str, Any]], bool],
        *,
        user: tuple[str, tuple[str, ...]] = ADMIN,
        timeout: float = 30.0,
    ) -> list[dict[str, Any]]:
        """The events of a watch (`path` with ?watch=true…) up to and including the first that `until` accepts,
        within a bound."""
        events: list[dict[str, Any]] = []
        limit = aiohttp.ClientTimeout(total=timeout)
        async with (
            aiohttp.ClientSession(timeout=limit, trust_env=False) as session,
            session.get(self.url + path, headers={"Accept": "application/json"}, ssl=self._ssl(user)) as resp,
        ):
            assert resp.status == 200, await resp.text()
            async for line in resp.content:
                if line.strip():
                    events.append(json.loads(line))
                    if until(events[-1]):
                        return events
        raise AssertionError(f"{self.name}: the watch ended before the awaited event: {events}")

    async def kubectl(
        self, workdir: Path, *args: str, token: str | None = None, user: tuple[str, tuple[str, ...]] = ADMIN
    ) -> subprocess.CompletedProcess[str]:
        """The kubectl built with the control plane (the real one), against this server, as a client-certificate
        user or with a bearer token."""
        home = workdir / f"kubectl-{self.name}"
        home.mkdir(parents=True, exist_ok=True)
        cert = None if token is not None else self.cluster.client_cert(user[0], list(user[1]))
        return await self.kubectl_with(
            self.cluster.write_kubeconfig(home / "kubeconfig", cert=cert, token=token), *args
        )

    async def kubectl_with(self, kubeconfig: Path, *args: str) -> subprocess.CompletedProcess[str]:
        """That kubectl with a kubeconfig of the caller's; its discovery cache beside the kubeconfig."""
        return await kubectl(kubeconfig, *args, home=kubeconfig.parent, binary=kubectl_binary(real=True))


@dataclass
class Pair:
    sim: Peer
    real: Peer
    namespace: str

    @property
    def peers(self) -> tuple[Peer, Peer]:
        return self.sim, self.real

    async def both(self, method: str, path: str, body: Any = None, **kwargs: Any) -> tuple[Answer, Answer]:
        return (
            await self.sim.call(method, path, body, **kwargs),
            await self.real.call(method, path, body, **kwargs),
        )

    async def setup(self, method: str, path: str, body: Any = None) -> tuple[Answer, Answer]:
        """A request that must succeed on both (set-up, not under test)."""
        answers = await self.both(method, path, body)
        for peer, answer in zip(self.peers, answers, strict=True):
            assert answer.status < 300, f"{peer.name}: {method} {path} → {answer.status} {answer.body}"
        return answers


def normalise(value: Any, servers: tuple[str, ...] = ()) -> Any:
    """The answer with every server-specific value replaced by a placeholder naming what it is."""
    if isinstance(value, dict):
        return {
            k: (f"<{k}>" if k in _OPAQUE_KEYS and v not in (None, "") else normalise(v, servers))
            for k, v in value.items()
            if k not in _DROPPED_KEYS
        }
    if isinstance(value, list):
        return [normalise(v, servers) for v in value]
    if isinstance(value, str):
        for server in servers:
            value = value.replace(server, "<server>")
        value = _JWT.sub("<jwt>", value)
        value = _UUID.sub("<uuid>", value)
        return _TIME.sub("<time>", value)
    return value


def assert_same(sim: Any, real: Any, *, servers: tuple[str, ...] = (), what: str = "") -> None:
    """Equal after normalisation; the message shows both sides."""
    a, b = normalise(sim, servers), normalise(real, servers)
    assert a == b, (
        f"{what}\nsimulator: {json.dumps(a, indent=1, sort_keys=True)}\nreal:      {json.dumps(b, indent=1, sort_keys=True)}"
    )


def status_of(answer: Answer) -> dict[str, Any]:
    """The parts of a Status error the broker reads: code, reason, message, details."""
    body = answer.body if isinstance(answer.body, dict) else {"text": answer.body}
    return {
        "http": answer.status,
        "kind": body.get("kind"),
        "status": body.get("status"),
        "reason": body.get("reason"),
        "message": body.get("message"),
        "details": body.get("details"),
        "code": body.get("code"),
    }


def claims(token: str) -> dict[str, Any]:
    payload = token.split(".")[1]
    return dict(json.loads(base64.urlsafe_b64decode(payload + "=" * (-len(payload) % 4))))


def header(token: str) -> dict[str, Any]:
    part = token.split(".")[0]
    return dict(json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4))))
