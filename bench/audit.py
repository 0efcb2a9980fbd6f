"""Section 6: the audit store at scale, by bench.audit_bench (bulk load, group commit, filtered queries)."""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import Any

import asyncpg

from broker.domain.errors import BrokerError

from . import audit_bench
from .procs import log


async def run(
    *, records: int, backends: Sequence[str], dsn: str, writers: int, per_writer: int, queries: int
) -> dict[str, Any]:
    args = argparse.Namespace(
        records=records, dsn=dsn, writers=writers, per_writer=per_writer, queries=queries, seed=1, keep=False
    )
    out: dict[str, Any] = {}
    for backend in backends:
        try:
            out[backend] = await audit_bench.run_backend(backend, args)
        except (OSError, BrokerError, asyncpg.PostgresError) as exc:
            # no PostgreSQL here: say so in the results rather than lose the rest of the run
            log(f"[{backend}] skipped: {type(exc).__name__}: {exc}")
            out[backend] = {"backend": backend, "error": f"{type(exc).__name__}: {exc}"}
    return out
