"""Section 3: how people fetch tokens today against the broker, one token after another.

- `kubectl create token` per token, against the same simulator with the admin kubeconfig;
- `token-broker issue` per token (a fresh process, TLS handshake and all);
- a warm HTTP client to the broker (one kept-alive mTLS connection).

The client-side CPU of the short-lived processes is what the kernel charged their exited children.
"""

from __future__ import annotations

import asyncio
import resource
import time
from collections import Counter
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .brokerproc import PLAIN_ROLE, BrokerProcess
from .load import TokenClient, broker_body, run_round, summarize
from .names import NAMESPACE, SERVICE_ACCOUNT
from .pki import Pki
from .procs import VENV_BIN, bench_env
from .sim import Sim

KUBECTL = "/usr/bin/kubectl"
PROCESS_TIMEOUT = 60.0


def _children_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


async def _one(argv: Sequence[str], env: dict[str, str]) -> str | None:
    proc = await asyncio.create_subprocess_exec(
        *argv, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE, env=env
    )
    try:
        out, err = await asyncio.wait_for(proc.communicate(), PROCESS_TIMEOUT)
    except TimeoutError:
        proc.kill()
        await proc.wait()
        return "timeout"
    if proc.returncode != 0:
        return f"exit {proc.returncode}: {err.decode(errors='replace').strip()[:120]}"
    # a JWT has three dot-separated parts; anything else is not a token
    return None if out.strip().count(b".") == 2 else "no token on stdout"


async def _per_process(argv: Sequence[str], runs: int, env: dict[str, str]) -> dict[str, Any]:
    errors: Counter[str] = Counter()
    cpu_before = _children_cpu()
    began = time.perf_counter()
    for _ in range(runs):
        error = await _one(argv, env)
        if error is not None:
            errors[error] += 1
    wall = time.perf_counter() - began
    tokens = runs - sum(errors.values())
    return {
        "runs": runs,
        "tokens": tokens,
        "errors": dict(errors),
        "tokens_per_s": tokens / wall if wall else 0.0,
        "ms_per_token": 1000 * wall / max(tokens, 1),
        "client_cpu_ms_per_token": 1000 * (_children_cpu() - cpu_before) / max(tokens, 1),
    }


async def run(
    sim: Sim,
    broker: BrokerProcess,
    pki: Pki,
    root: Path,
    *,
    kubectl_runs: int,
    issue_runs: int,
    warm_seconds: float,
) -> dict[str, Any]:
    env = bench_env(root)
    kubectl = [
        KUBECTL,
        "--kubeconfig",
        str(sim.admin_kubeconfig),
        "create",
        "token",
        SERVICE_ACCOUNT,
        "--namespace",
        NAMESPACE,
        "--duration",
        "15m",
    ]
    cert, key = pki.caller("client-000")
    issue = [
        str(VENV_BIN / "token-broker"),
        "issue",
        "--broker",
        broker.url,
        "--cacert",
        str(pki.server_ca),
        "--cert",
        str(cert),
        "--key",
        str(key),
        "--role",
        PLAIN_ROLE.name,
        "--namespace",
        NAMESPACE,
        "--ttl",
        "15m",
        "--output",
        "token",
    ]
    out: dict[str, Any] = {
        "kubectl": await _per_process(kubectl, kubectl_runs, env),
        "issue_process": await _per_process(issue, issue_runs, env),
    }
    warm = TokenClient(
        broker.url + "/v1/tokens", [broker_body(PLAIN_ROLE.name, NAMESPACE)], pki.caller_ssl("client-000")
    )
    processes = {"broker": broker.process.cpu, "sim": sim.process.cpu}
    try:
        await run_round([warm], processes, seconds=min(1.0, warm_seconds))
        out["warm_client"] = summarize([await run_round([warm], processes, seconds=warm_seconds)]).as_dict()
    finally:
        await warm.close()
    kubectl_rate = out["kubectl"]["tokens_per_s"]
    out["warm_vs_kubectl"] = out["warm_client"]["tokens_per_s"] / kubectl_rate if kubectl_rate else 0.0
    out["issue_vs_kubectl"] = out["issue_process"]["tokens_per_s"] / kubectl_rate if kubectl_rate else 0.0
    return out
