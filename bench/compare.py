"""Sections 1 and 2: TokenRequests straight to the simulator (the floor) against tokens through the broker,
same simulator, same clients' shape, rounds alternating so the noise of shared cores hits both alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from . import brokermetrics
from .brokerproc import PLAIN_ROLE, REVOCABLE_ROLE, BrokerProcess
from .load import Round, TokenClient, broker_body, close_all, run_round, summarize, token_request_body
from .names import NAMESPACE, SERVICE_ACCOUNT, caller_name
from .pki import Pki
from .procs import log
from .sim import Sim

# path name → what the table calls it
PATHS = {
    "direct": "direct TokenRequest (floor)",
    "broker": "broker, role with existing SA",
    "broker_revocable": "broker, revocable role (+Secret)",
}


async def run(
    sim: Sim,
    broker: BrokerProcess,
    pki: Pki,
    *,
    concurrencies: Sequence[int],
    rounds: int,
    seconds: float,
    warmup_seconds: float,
) -> dict[str, Any]:
    processes = {"broker": broker.process.cpu, "sim": sim.process.cpu}
    sim_url = f"{sim.url}/api/v1/namespaces/{NAMESPACE}/serviceaccounts/{SERVICE_ACCOUNT}/token"
    tokens_url = broker.url + "/v1/tokens"
    direct_body = token_request_body()
    admin_ssl = sim.admin_ssl()
    out: dict[str, Any] = {}
    for concurrency in concurrencies:
        # each broker client is its own caller (CN=client-NNN, O=bench), on its own connection
        callers = [pki.caller_ssl(caller_name(i)) for i in range(concurrency)]
        paths = {
            "direct": [TokenClient(sim_url, [direct_body], admin_ssl) for _ in range(concurrency)],
            "broker": [
                TokenClient(tokens_url, [broker_body(PLAIN_ROLE.name, NAMESPACE)], c) for c in callers
            ],
            "broker_revocable": [
                TokenClient(tokens_url, [broker_body(REVOCABLE_ROLE.name, NAMESPACE)], c) for c in callers
            ],
        }
        try:
            for clients in paths.values():
                # connections, TLS handshakes, the SA cache and the JWKS: not part of the steady state
                await run_round(clients, processes, seconds=warmup_seconds)
            by_path: dict[str, list[Round]] = {name: [] for name in paths}
            # the broker's histograms, added up over the rounds of each broker path
            spent: dict[str, dict[str, float]] = {name: {} for name in paths if name != "direct"}
            for i in range(rounds):
                for name, clients in paths.items():
                    before = await brokermetrics.scrape(broker.metrics_url) if name in spent else {}
                    by_path[name].append(await run_round(clients, processes, seconds=seconds))
                    if name in spent:
                        after = await brokermetrics.scrape(broker.metrics_url)
                        for key, value in after.items():
                            spent[name][key] = spent[name].get(key, 0.0) + value - before.get(key, 0.0)
                log(f"  concurrency {concurrency}: round {i + 1}/{rounds} done")
        finally:
            for clients in paths.values():
                await close_all(clients)
        rows: dict[str, Any] = {}
        for name, measured in by_path.items():
            rows[name] = summarize(measured).as_dict()
            if name in spent:
                tokens = rows[name]["tokens"]
                rows[name]["broker_time_ms"] = brokermetrics.breakdown({}, spent[name], tokens)
        out[str(concurrency)] = rows
    return out
