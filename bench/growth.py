"""Section 5: does the cost per token stay flat as the config and the cluster grow?

- N roles and N grants in the config (each grant names the bench group and a team of its own, so the
  caller holds all N grants); requests rotate over the first 10 roles. Against the main simulator.
- 100,000 service accounts already in the cluster (a seeded simulator, see bench.simproc):
  * warm: requests rotate over 10 accounts the broker's ServiceAccount cache holds after the warm-up;
  * rotating: every request names a random one of all the accounts (100 roles x N namespaces), far more
    than the broker's cache (4,096 entries) holds, so nearly every token costs a GET of the account too.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .brokerproc import BrokerOptions, BrokerProcess, RoleSpec, render_config, start_broker
from .load import TokenClient, broker_body, close_all, run_round, summarize
from .names import NAMESPACE, ROLE_ACCOUNTS, caller_name
from .pki import Pki
from .procs import log
from .sim import Sim, seeded_sim_argv, start_sim
from .simproc import seeded_account, seeded_namespace


async def _measure(
    sim: Sim,
    broker: BrokerProcess,
    pki: Pki,
    bodies: Sequence[bytes],
    *,
    concurrency: int,
    rounds: int,
    seconds: float,
    warmup_bodies: Sequence[bytes] | None = None,
) -> dict[str, Any]:
    url = broker.url + "/v1/tokens"
    processes = {"broker": broker.process.cpu, "sim": sim.process.cpu}
    contexts = [pki.caller_ssl(caller_name(i)) for i in range(concurrency)]
    warm = [TokenClient(url, warmup_bodies or bodies, c) for c in contexts]
    clients = [TokenClient(url, bodies, c) for c in contexts]
    try:
        # every body of a small set at least once: the account cache and the JWKS are warm after this
        await run_round(warm, processes, count=max(2 * len(warmup_bodies or bodies), 2 * concurrency))
        measured = [await run_round(clients, processes, seconds=seconds) for _ in range(rounds)]
    finally:
        await close_all(warm)
        await close_all(clients)
    return {**summarize(measured).as_dict(), "broker_rss_mb": broker.process.rss_mb()}


async def run(
    root: Path,
    pki: Pki,
    main_sim: Sim,
    *,
    role_counts: Sequence[int],
    namespaces: int,
    per_namespace: int,
    concurrency: int,
    rounds: int,
    seconds: float,
    options: BrokerOptions,
) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    kubeconfig = main_sim.broker_kubeconfig(root / "broker-growth.kubeconfig")
    for n in role_counts:
        roles = [RoleSpec(f"role-{i:05d}", ROLE_ACCOUNTS[i % len(ROLE_ACCOUNTS)]) for i in range(n)]
        config = render_config(
            pki=pki,
            kubeconfig_path=kubeconfig,
            audit_path=root / f"audit-roles-{n}.sqlite3",
            roles=roles,
            grant_per_role=True,
        )
        log(f"  {n} roles + {n} grants")
        broker = await start_broker(root, f"broker-roles-{n}", config, options)
        try:
            bodies = [broker_body(r.name, NAMESPACE) for r in roles[:10]]
            row = await _measure(
                main_sim, broker, pki, bodies, concurrency=concurrency, rounds=rounds, seconds=seconds
            )
        finally:
            await broker.stop()
        rows.append({"case": f"{n} roles + {n} grants", "broker_start_s": broker.started_seconds, **row})

    accounts = namespaces * per_namespace
    log(f"  seeding a simulator with {accounts:,} service accounts")
    seeded = await start_sim(root, "sim-seeded", seeded_sim_argv(namespaces, per_namespace))
    try:
        roles = [
            RoleSpec(f"rot-{j:02d}", seeded_account(j), namespaces=("grow-*",)) for j in range(per_namespace)
        ]
        config = render_config(
            pki=pki,
            kubeconfig_path=seeded.broker_kubeconfig(root / "broker-seeded.kubeconfig"),
            audit_path=root / "audit-seeded.sqlite3",
            roles=roles,
            grant_per_role=False,
        )
        broker = await start_broker(root, "broker-seeded", config, options)
        try:
            few = [broker_body(r.name, seeded_namespace(0)) for r in roles[:10]]
            log(f"  {accounts:,} accounts in the cluster, 10 of them asked for (cache warm)")
            warm = await _measure(
                seeded, broker, pki, few, concurrency=concurrency, rounds=rounds, seconds=seconds
            )
            every = [broker_body(r.name, seeded_namespace(i)) for i in range(namespaces) for r in roles]
            log(f"  {accounts:,} accounts in the cluster, all of them asked for at random (cache misses)")
            cold = await _measure(
                seeded,
                broker,
                pki,
                every,
                concurrency=concurrency,
                rounds=rounds,
                seconds=seconds,
                warmup_bodies=few,
            )
        finally:
            await broker.stop()
    finally:
        await seeded.stop()
    rows.append({"case": f"{accounts:,} SAs in cluster, 10 asked (SA cache warm)", **warm})
    rows.append({"case": f"{accounts:,} SAs in cluster, random one asked (SA cache cold)", **cold})
    return rows
