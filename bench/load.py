"""The load generator: keep-alive TLS clients that ask for tokens, rounds that time them, and what each round
cost every process (CPU from /proc before and after).

A client is one aiohttp session with a single connection: "concurrency N" means N clients, each with a
request in flight at all times (closed loop), each on its own kept-alive TLS connection.
"""

from __future__ import annotations

import asyncio
import json
import random
import ssl
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import aiohttp

from .procs import self_cpu_seconds

JSON = {"Content-Type": "application/json"}


def percentile(samples: Sequence[float], q: float) -> float:
    """Nearest-rank percentile (q in 0..1); 0 for no samples."""
    if not samples:
        return 0.0
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, max(0, round(q * (len(ordered) - 1))))]


class TokenClient:
    """POSTs a prepared body to a URL on one kept-alive TLS connection; a 201 with a token is success.

    `bodies` > 1: each call picks one at random (requests spread over roles or accounts).
    """

    def __init__(
        self, url: str, bodies: Sequence[bytes], ssl_context: ssl.SSLContext, *, timeout: float = 60.0
    ) -> None:
        self.url = url
        self.bodies = list(bodies)
        self._session = aiohttp.ClientSession(
            connector=aiohttp.TCPConnector(ssl=ssl_context, limit=1),
            trust_env=False,
            timeout=aiohttp.ClientTimeout(total=timeout),
        )

    async def call(self) -> str | None:
        """None on success, else a short error class (`HTTP 503 ...`, `timeout`, `ClientOSError`)."""
        body = self.bodies[0] if len(self.bodies) == 1 else random.choice(self.bodies)  # noqa: S311
        try:
            async with self._session.post(self.url, data=body, headers=JSON) as resp:
                data = await resp.read()
                if resp.status != 201:
                    return f"HTTP {resp.status} {_problem_title(data)}".rstrip()
                if b'"token"' not in data:
                    return "201 without a token"
        except TimeoutError:
            return "timeout"
        except aiohttp.ClientError as exc:
            return type(exc).__name__
        return None

    async def close(self) -> None:
        await self._session.close()


def _problem_title(data: bytes) -> str:
    try:
        doc: Any = json.loads(data)
    except ValueError:
        return data[:60].decode(errors="replace")
    if isinstance(doc, dict):
        return str(doc.get("title") or doc.get("reason") or doc.get("message") or "")[:80]
    return ""


def token_request_body(audiences: Sequence[str] = (), expiration_seconds: int = 900) -> bytes:
    """A TokenRequest like the one the broker sends for a 15-minute token (no binding)."""
    spec = {"audiences": list(audiences), "expirationSeconds": expiration_seconds}
    return json.dumps(
        {"apiVersion": "authentication.k8s.io/v1", "kind": "TokenRequest", "spec": spec}
    ).encode()


def broker_body(role: str, namespace: str, ttl: str = "15m") -> bytes:
    return json.dumps({"role": role, "namespace": namespace, "ttl": ttl}).encode()


@dataclass
class Round:
    """One timed round: successes, errors by class, latencies (s), wall time, CPU seconds per process."""

    tokens: int = 0
    errors: Counter[str] = field(default_factory=Counter)
    latencies: list[float] = field(default_factory=list)
    wall: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)


async def run_round(
    clients: Sequence[TokenClient],
    processes: Mapping[str, Callable[[], float]],
    *,
    seconds: float | None = None,
    count: int | None = None,
) -> Round:
    """Every client loops until `seconds` have passed or `count` requests were started (one of them).

    processes: name → a function returning that process's CPU seconds so far; "loadgen" is added.
    """
    if (seconds is None) == (count is None):
        raise ValueError("give seconds or count")
    meters = {**processes, "loadgen": self_cpu_seconds}
    result = Round()
    started = 0
    before = {name: read() for name, read in meters.items()}
    began = time.perf_counter()
    deadline = began + seconds if seconds is not None else float("inf")

    async def loop(client: TokenClient) -> None:
        nonlocal started
        while time.perf_counter() < deadline and (count is None or started < count):
            started += 1
            t0 = time.perf_counter()
            error = await client.call()
            result.latencies.append(time.perf_counter() - t0)
            if error is None:
                result.tokens += 1
            else:
                result.errors[error] += 1

    await asyncio.gather(*(loop(c) for c in clients))
    result.wall = time.perf_counter() - began
    result.cpu = {name: read() - before[name] for name, read in meters.items()}
    return result


@dataclass
class Summary:
    """Rounds of one path pooled: throughput over their summed wall time, latency over all samples,
    CPU per token over all tokens."""

    tokens: int
    errors: dict[str, int]
    wall: float
    tokens_per_s: float
    p50_ms: float
    p99_ms: float
    max_ms: float
    cpu_ms_per_token: dict[str, float]
    # the spread of the per-round CPU per token (noise on shared cores)
    cpu_ms_per_token_rounds: dict[str, list[float]]

    def as_dict(self) -> dict[str, Any]:
        return dict(vars(self))


def summarize(rounds: Sequence[Round]) -> Summary:
    tokens = sum(r.tokens for r in rounds)
    wall = sum(r.wall for r in rounds)
    errors: Counter[str] = Counter()
    latencies: list[float] = []
    for r in rounds:
        errors.update(r.errors)
        latencies.extend(r.latencies)
    names = sorted({n for r in rounds for n in r.cpu})
    per_token = {n: 1000 * sum(r.cpu.get(n, 0.0) for r in rounds) / max(tokens, 1) for n in names}
    per_round = {n: [round(1000 * r.cpu.get(n, 0.0) / max(r.tokens, 1), 3) for r in rounds] for n in names}
    return Summary(
        tokens=tokens,
        errors=dict(errors),
        wall=wall,
        tokens_per_s=tokens / wall if wall else 0.0,
        p50_ms=1000 * percentile(latencies, 0.50),
        p99_ms=1000 * percentile(latencies, 0.99),
        max_ms=1000 * max(latencies, default=0.0),
        cpu_ms_per_token=per_token,
        cpu_ms_per_token_rounds=per_round,
    )


async def close_all(clients: Sequence[TokenClient]) -> None:
    await asyncio.gather(*(c.close() for c in clients))
