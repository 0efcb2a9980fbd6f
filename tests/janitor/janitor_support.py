"""Helpers for the janitor tests: audit records, real bound tokens, and a TCP relay that can be cut."""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import uuid
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from kubesim_harness import MakeClient as MakeClient

# re-exported for the tests of this folder
from support.retry import FAST_RETRY as FAST_RETRY

from broker.audit import AuditRecord, SqlAuditStore
from broker.audit.records import SecretBinding
from broker.kube import Cluster, SecretRef
from broker.kube.labels import MANAGED_BY, ROLE_LABEL, TOKEN_ID_LABEL
from kubesim import KubeSim
from kubesim import kubeconfig as sim_kubeconfig
from kubesim.coordination_v1 import LEASES
from kubesim.kinds import SECRETS, SERVICEACCOUNTS

NS = "default"
CLUSTER = "sim"
SECRETS_PATH = f"/api/v1/namespaces/{NS}/secrets"
LEASES_PATH = f"/apis/coordination.k8s.io/v1/namespaces/{NS}/leases"


def now() -> datetime:
    return datetime.now(UTC)


# -- the simulator's state, read directly (no network, no retries) ------------------------------------------
def secret_exists(sim: KubeSim, name: str, namespace: str = NS) -> bool:
    return sim.store.try_get(SECRETS, namespace, name) is not None


def account_exists(sim: KubeSim, name: str, namespace: str = NS) -> bool:
    return sim.store.try_get(SERVICEACCOUNTS, namespace, name) is not None


def lease_spec(sim: KubeSim, name: str, namespace: str = NS) -> dict[str, object] | None:
    lease = sim.store.try_get(LEASES, namespace, name)
    return None if lease is None else dict(lease["spec"])


async def token_status(sim: KubeSim, token: str) -> int:
    """The status the simulator answers a request made with `token`: 401 once the token is revoked."""
    ssl = sim.client_ssl_context()
    async with (
        aiohttp.ClientSession(trust_env=False, timeout=aiohttp.ClientTimeout(total=5)) as http,
        http.get(
            f"{sim.url}/api/v1/namespaces/{NS}/serviceaccounts",
            headers={"Authorization": f"Bearer {token}"},
            ssl=ssl,
        ) as resp,
    ):
        await resp.read()
        return resp.status


# -- tokens and records --------------------------------------------------------------------------------------
async def binding_secret(
    admin: Cluster, *, account: str = "deployer", token_id: str | None = None, role: str = "deployer"
) -> SecretRef:
    labels = {**MANAGED_BY, ROLE_LABEL: role}
    if token_id is not None:
        labels[TOKEN_ID_LABEL] = token_id
    await admin.accounts.ensure(NS, account, labels=MANAGED_BY)
    return await admin.secrets.create_binding(NS, service_account=account, labels=labels)


async def bound_token(admin: Cluster, secret: SecretRef, *, account: str = "deployer") -> str:
    """A real token for `account`, bound to `secret`, for the API server's own audiences."""
    response = await admin.tokens.request(
        NS, account, audiences=[], expiration_seconds=600, bound_secret=secret
    )
    return response.token


async def record_pending(
    store: SqlAuditStore,
    *,
    begun: datetime,
    token_id: str | None = None,
    role: str = "deployer",
    account: str = "deployer",
    cluster: str = CLUSTER,
    namespace: str = NS,
) -> str:
    token_id = token_id or str(uuid.uuid4())
    await store.begin_issuance(
        AuditRecord(
            id=token_id,
            time=begun,
            event="pending",
            caller_user="ci",
            caller_method="mtls",
            role=role,
            cluster=cluster,
            namespace=namespace,
            service_account=account,
        )
    )
    return token_id


async def record_issued(
    store: SqlAuditStore,
    *,
    expires_at: datetime,
    revoke_at: datetime | None = None,
    secret: SecretRef | SecretBinding | None = None,
    role: str = "deployer",
    account: str = "deployer",
    cluster: str = CLUSTER,
    namespace: str = NS,
) -> str:
    issued_at = min(expires_at, revoke_at or expires_at) - timedelta(minutes=10)
    token_id = await record_pending(
        store, begun=issued_at, role=role, account=account, cluster=cluster, namespace=namespace
    )
    binding = None if secret is None else SecretBinding(secret.namespace, secret.name, secret.uid)
    await store.complete_issuance(
        token_id,
        jti=str(uuid.uuid4()),
        token_sha256=hashlib.sha256(token_id.encode()).hexdigest(),
        issued_at=issued_at,
        expires_at=expires_at,
        revoke_at=revoke_at,
        bound_secret=binding,
        ttl_granted=600,
    )
    return token_id


async def state_of(store: SqlAuditStore, token_id: str) -> str:
    record = await store.get_issuance(token_id)
    assert record is not None
    return record.event


async def wait_for(predicate: Callable[[], bool], *, timeout: float, step: float = 0.02) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(step)


# -- a network partition between one replica and the API server ------------------------------------------------
class Relay:
    """A TCP relay to the simulator that can be cut: while cut, every connection through it hangs
    (requests time out, as across a real network partition) and open connections are torn down."""

    def __init__(self, sim: KubeSim) -> None:
        self._target_host, port = sim.url.removeprefix("https://").rsplit(":", 1)
        self._target_port = int(port)
        self._server: asyncio.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()
        self._healed = asyncio.Event()
        self._healed.set()
        self.port = 0

    @property
    def is_cut(self) -> bool:
        return not self._healed.is_set()

    async def start(self) -> Relay:
        self._server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def kubeconfig(self, sim: KubeSim, path: Path) -> Path:
        config = sim_kubeconfig.build(
            f"https://127.0.0.1:{self.port}",
            sim.ca_pem,
            user="admin",
            cert=sim.client_cert("admin", ["system:masters"]),
        )
        return sim_kubeconfig.write(path, config)

    def cut(self) -> None:
        self._healed.clear()
        for writer in list(self._writers):
            writer.transport.abort()

    def heal(self) -> None:
        self._healed.set()

    async def close(self) -> None:
        self.heal()
        if self._server is not None:
            self._server.close()
        for writer in list(self._writers):
            writer.transport.abort()
        if self._server is not None:
            await self._server.wait_closed()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self._writers.add(writer)
        upstream: asyncio.StreamWriter | None = None
        try:
            if self.is_cut:
                await self._healed.wait()  # the caller's timeout ends this connection first
                return
            up_reader, upstream = await asyncio.open_connection(self._target_host, self._target_port)
            self._writers.add(upstream)
            await asyncio.gather(self._pipe(reader, upstream), self._pipe(up_reader, writer))
        except (ConnectionError, OSError):
            pass
        finally:
            for w in (writer, upstream):
                if w is not None:
                    self._writers.discard(w)
                    w.transport.abort()

    @staticmethod
    async def _pipe(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        with contextlib.suppress(ConnectionError, OSError):
            while data := await reader.read(65536):
                writer.write(data)
                await writer.drain()
        writer.transport.abort()
