"""Per-call cost of a TokenRequest (and a ServiceAccount GET) three ways, against the simulator.

Run by hand, not in CI:  .venv/bin/python bench/kube_client_bench.py [--calls 2000]

1. broker.kube.Cluster (one trust_env=False session, dict bodies, retries armed but not needed)
2. a raw aiohttp ClientSession with the same TLS context (the floor)
3. kubernetes_asyncio's generated CoreV1Api on its default ApiClient (trust_env=True, generated models)

Client and simulator share one process and event loop, so each figure includes the simulator's own work
(RS256 signing for a TokenRequest); the differences between the rows are the client's overhead.
"""

from __future__ import annotations

import argparse
import asyncio
import ssl
import statistics
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp

from broker.kube import Cluster
from broker.kube.transport import load_connection
from kubesim import KubeSim

NS, SA = "default", "bench"


async def timed(name: str, calls: int, fn: Callable[[], Awaitable[Any]], rounds: int = 3) -> float:
    for _ in range(min(200, calls)):
        await fn()
    per_call = []
    for _ in range(rounds):
        start = time.perf_counter()
        for _ in range(calls):
            await fn()
        per_call.append((time.perf_counter() - start) / calls * 1e6)
    best = min(per_call)
    print(f"  {name:<44} {best:8.0f} µs/call  (median {statistics.median(per_call):.0f})")
    return best


async def main(calls: int) -> None:
    from kubernetes_asyncio import client as k8s
    from kubernetes_asyncio.config import load_kube_config

    with tempfile.TemporaryDirectory() as tmp:
        async with KubeSim(state_dir=Path(tmp)) as sim:
            broker = await Cluster.connect(
                "bench", kubeconfig=sim.admin_kubeconfig, context=None, in_cluster=False, request_timeout=10
            )
            await broker.accounts.ensure(NS, SA)
            body = {
                "apiVersion": "authentication.k8s.io/v1",
                "kind": "TokenRequest",
                "spec": {"audiences": ["vault"], "expirationSeconds": 600},
            }
            token_path = f"/api/v1/namespaces/{NS}/serviceaccounts/{SA}/token"
            sa_path = f"/api/v1/namespaces/{NS}/serviceaccounts/{SA}"

            # the raw session: same TLS material as the broker's (the private connection is the honest floor)
            conn = await load_connection(kubeconfig=sim.admin_kubeconfig, context=None, in_cluster=False)

            auth = conn.credentials.static_header
            raw = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(ssl=conn.ssl_context or ssl.create_default_context()),
                trust_env=False,
                headers={"Authorization": auth} if auth else None,
            )

            async def raw_token() -> None:
                async with raw.post(conn.server_url + token_path, json=body) as resp:
                    await resp.json()

            async def raw_get() -> None:
                async with raw.get(conn.server_url + sa_path) as resp:
                    await resp.json()

            configuration = k8s.Configuration()
            await load_kube_config(
                config_file=str(sim.admin_kubeconfig),
                client_configuration=configuration,
                persist_config=False,
            )
            api_client = k8s.ApiClient(configuration)
            core = k8s.CoreV1Api(api_client)
            model = k8s.AuthenticationV1TokenRequest(
                spec=k8s.V1TokenRequestSpec(audiences=["vault"], expiration_seconds=600)
            )

            async def generated_token() -> None:
                await core.create_namespaced_service_account_token(SA, NS, model, _request_timeout=10)

            async def generated_get() -> None:
                await core.read_namespaced_service_account(SA, NS, _request_timeout=10)

            async def broker_token() -> None:
                await broker.tokens.request(NS, SA, audiences=["vault"], expiration_seconds=600)

            async def broker_get() -> None:
                await broker.api.get_json(sa_path)

            print(f"TokenRequest, {calls} sequential calls, best of 3 rounds:")
            await timed("raw aiohttp session", calls, raw_token)
            await timed("broker.kube.Cluster.tokens.request", calls, broker_token)
            await timed("kubernetes_asyncio CoreV1Api (default)", calls, generated_token)
            print(f"GET serviceaccount, {calls} sequential calls, best of 3 rounds:")
            await timed("raw aiohttp session", calls, raw_get)
            await timed("broker.kube.Cluster.api.get_json", calls, broker_get)
            await timed("kubernetes_asyncio CoreV1Api (default)", calls, generated_get)

            await raw.close()
            await api_client.close()
            await broker.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--calls", type=int, default=2000)
    asyncio.run(main(parser.parse_args().calls))
