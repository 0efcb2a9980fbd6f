"""Where a token's time goes inside the broker, from its own Prometheus histograms (scraped before and after
a round): audit writes, Kubernetes API calls, and the rest of the HTTP request.

Only sums and counts are read, so the split is of mean times: per token, how many milliseconds were spent
waiting for audit commits and for the API server, out of the request's total.
"""

from __future__ import annotations

from collections.abc import Mapping

import aiohttp

from broker.metrics import PREFIX

# histogram name (without the prefix) → the name the breakdown gives it
HISTOGRAMS = {
    "http_request_duration_seconds": "http_request",
    "audit_write_duration_seconds": "audit_writes",
    "kube_request_duration_seconds": "kube_requests",
}


def parse_sums(text: str) -> dict[str, float]:
    """`<histogram>_sum` and `<histogram>_count` of the histograms above, summed over their label sets."""
    out: dict[str, float] = {}
    for line in text.splitlines():
        if not line.startswith(PREFIX):
            continue
        name_part, _, value = line.rpartition(" ")
        name = name_part.split("{", 1)[0][len(PREFIX) :]
        for histogram in HISTOGRAMS:
            if name in (histogram + "_sum", histogram + "_count"):
                out[name] = out.get(name, 0.0) + float(value)
    return out


async def scrape(metrics_url: str) -> dict[str, float]:
    timeout = aiohttp.ClientTimeout(total=10)
    async with (
        aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
        session.get(metrics_url + "/metrics") as resp,
    ):
        return parse_sums(await resp.text())


def breakdown(before: Mapping[str, float], after: Mapping[str, float], tokens: int) -> dict[str, float]:
    """Milliseconds per token: each histogram's added time, and how many observations per token."""
    out: dict[str, float] = {}
    for histogram, label in HISTOGRAMS.items():
        spent = after.get(histogram + "_sum", 0.0) - before.get(histogram + "_sum", 0.0)
        calls = after.get(histogram + "_count", 0.0) - before.get(histogram + "_count", 0.0)
        out[label + "_ms"] = 1000 * spent / max(tokens, 1)
        out[label + "_per_token"] = calls / max(tokens, 1)
    # what is neither an audit commit nor an API call: the broker's own work and its queueing
    out["own_ms"] = out["http_request_ms"] - out["audit_writes_ms"] - out["kube_requests_ms"]
    return out
