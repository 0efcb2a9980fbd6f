"""Audit store at scale: bulk load, group-commit write rate, and the query by caller and time window.

Run by hand, not in CI:

    .venv/bin/python -m bench.audit_bench --records 1000000 --backend both

For each backend, on a fresh database (a temporary SQLite file; a throw-away PostgreSQL schema):

1. bulk-load N issued tokens (each an `issuances` row and its `issued` event; a few failed, revoked and
   denied) spread over 200 callers, 50 roles, 100 namespaces and 30 days, then ANALYZE;
2. group commit: 100 concurrent writers each running write-ahead issuances (begin + complete = 2 commits'
   worth of work) through the normal store path; issuances/s and how many transactions carried them;
3. 200 random "caller X within a 1-day window, first page of 50" queries on both listings, p50 and p99,
   plus the same for role+day, namespace+day, a jti lookup and `active=true`.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import random
import sys
import tempfile
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg

from broker.app.stores import make_sql_store
from broker.audit import AuditFilter, AuditRecord, SecretBinding, SqlAuditStore
from broker.settings import AuditSettings

CALLERS = [f"ci-{i:03d}" for i in range(200)]
ROLES = [f"role-{i:02d}" for i in range(50)]
NAMESPACES = [f"ns-{i:03d}" for i in range(100)]
DAYS = 30
CHUNK = 10_000
DEFAULT_DSN = "postgresql://postgres@127.0.0.1:5432/test"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def generate(n: int, now: datetime, rng: random.Random) -> Iterator[list[AuditRecord]]:
    span = DAYS * 86400
    chunk: list[AuditRecord] = []
    for i in range(n):
        at = now - timedelta(seconds=rng.random() * span)
        roll = rng.random()
        event = (
            "issued" if roll < 0.90 else "failed" if roll < 0.95 else "revoked" if roll < 0.98 else "denied"
        )
        issued = event in ("issued", "revoked")
        ttl = rng.choice((600, 900, 3600))
        ns = rng.choice(NAMESPACES)
        chunk.append(
            AuditRecord(
                id=str(uuid.UUID(int=rng.getrandbits(128), version=4)),
                time=at,
                event=event,  # type: ignore[arg-type]
                caller_user=rng.choice(CALLERS),
                caller_method="mtls",
                caller_groups=("ci",),
                source_address=f"10.0.{rng.randrange(256)}.{rng.randrange(256)}",
                user_agent="jenkins/2.440",
                role=rng.choice(ROLES),
                cluster="prod",
                namespace=ns,
                service_account="tb-deployer",
                audiences=("https://kubernetes.default.svc",),
                ttl_requested=ttl,
                ttl_granted=ttl,
                jti=str(uuid.UUID(int=rng.getrandbits(128), version=4)) if issued else None,
                token_sha256=hashlib.sha256(str(i).encode()).hexdigest() if issued else None,
                issued_at=at if issued else None,
                expires_at=at + timedelta(seconds=ttl) if issued else None,
                bound_secret=SecretBinding(ns, f"tb-{i}", "") if issued else None,
                context={"job": f"build-{rng.randrange(5000)}", "build_url": f"https://ci.example/job/{i}/"},
                reason="upstream 500" if event == "failed" else "no grant" if event == "denied" else "",
                status=201 if issued else 502 if event == "failed" else 403,
                revoked_by="operator" if event == "revoked" else None,
                revoked_at=at + timedelta(seconds=60) if event == "revoked" else None,
            )
        )
        if len(chunk) == CHUNK:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def percentile(samples: list[float], q: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def timed_queries(n: int, query: Callable[[], Awaitable[Any]]) -> tuple[float, float, float]:
    for _ in range(5):  # warm the cache and the statement cache
        await query()
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        await query()
        samples.append((time.perf_counter() - start) * 1000)
    return percentile(samples, 0.5), percentile(samples, 0.99), max(samples)


async def bulk_load(store: SqlAuditStore, n: int, now: datetime, rng: random.Random) -> list[str]:
    start = time.perf_counter()
    jtis: list[str] = []
    done = 0
    for chunk in generate(n, now, rng):
        await store.import_records(chunk)
        jtis.extend(r.jti for r in chunk[:20] if r.jti)
        done += len(chunk)
        if done % 100_000 == 0:
            log(f"  loaded {done:,} ({done / (time.perf_counter() - start):,.0f} records/s)")
    elapsed = time.perf_counter() - start
    log(f"  bulk load: {n:,} records in {elapsed:.1f}s ({n / elapsed:,.0f} records/s)")
    async with store.backend.transaction() as tx:
        await tx.execute("ANALYZE")
    return jtis


async def group_commit_rate(
    store: SqlAuditStore, writers: int, per_writer: int, now: datetime
) -> dict[str, float]:
    before_tx, before_ops = store.stats.transactions, store.stats.operations

    async def writer(w: int) -> None:
        for k in range(per_writer):
            rec = AuditRecord(
                id=str(uuid.uuid4()),
                time=now,
                event="pending",
                caller_user=f"ci-{w % 200:03d}",
                caller_method="mtls",
                role=ROLES[k % 50],
                namespace=NAMESPACES[w % 100],
                cluster="prod",
                context={"job": f"w{w}-{k}"},
            )
            await store.begin_issuance(rec)
            await store.complete_issuance(
                rec.id,
                jti=str(uuid.uuid4()),
                token_sha256=hashlib.sha256(rec.id.encode()).hexdigest(),
                issued_at=now,
                expires_at=now + timedelta(minutes=15),
                bound_secret=SecretBinding(rec.namespace, f"tb-{rec.id[:8]}", ""),
            )

    start = time.perf_counter()
    await asyncio.gather(*(writer(w) for w in range(writers)))
    elapsed = time.perf_counter() - start
    issuances = writers * per_writer
    transactions = store.stats.transactions - before_tx
    ops = store.stats.operations - before_ops
    return {
        "issuances_per_s": issuances / elapsed,
        "commits_per_s": ops / elapsed,
        "transactions": transactions,
        "ops_per_transaction": ops / max(transactions, 1),
    }


async def run_backend(backend: str, args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)  # noqa: S311 -- reproducible test data, not secrets
    now = datetime.now(UTC).replace(microsecond=0)
    schema = f"audit_bench_{uuid.uuid4().hex[:8]}"
    tmp = tempfile.TemporaryDirectory(prefix="audit-bench-")
    if backend == "sqlite":
        settings = AuditSettings(sqlite_path=Path(tmp.name) / "audit.sqlite3", write_timeout_seconds=60)
    else:
        settings = AuditSettings(
            backend="postgres", postgres_dsn=args.dsn, postgres_schema=schema, write_timeout_seconds=60
        )
    store = make_sql_store(settings)
    await store.open()
    result: dict[str, Any] = {"backend": backend, "records": args.records}
    try:
        log(f"[{backend}] bulk-loading {args.records:,} records")
        start = time.perf_counter()
        jtis = await bulk_load(store, args.records, now, rng)
        result["bulk_records_per_s"] = args.records / (time.perf_counter() - start)

        log(f"[{backend}] group commit: {args.writers} writers x {args.per_writer} issuances")
        result["group_commit"] = await group_commit_rate(store, args.writers, args.per_writer, now)

        def window() -> tuple[datetime, datetime]:
            day_start = now - timedelta(days=rng.randrange(1, DAYS), hours=rng.randrange(24))
            return day_start, day_start + timedelta(days=1)

        def by(field: str, values: list[str], listing: str) -> Callable[[], Awaitable[Any]]:
            async def query() -> Any:
                since, until = window()
                f = AuditFilter(since=since, until=until, **{field: rng.choice(values)})
                if listing == "issuances":
                    page = await store.query_issuances(f, limit=50)
                else:
                    page = await store.query_events(f, limit=50)
                return page

            return query

        async def jti_lookup() -> Any:
            return await store.find_by_jti(rng.choice(jtis))

        async def active_page() -> Any:
            return await store.query_issuances(AuditFilter(active=True), limit=50)

        queries: dict[str, Callable[[], Awaitable[Any]]] = {
            "caller+1 day, issuances": by("caller", CALLERS, "issuances"),
            "caller+1 day, events": by("caller", CALLERS, "events"),
            "role+1 day, issuances": by("role", ROLES, "issuances"),
            "namespace+1 day, events": by("namespace", NAMESPACES, "events"),
            "jti lookup": jti_lookup,
            "active=true, first page": active_page,
        }
        result["queries_ms"] = {}
        for name, query in queries.items():
            p50, p99, worst = await timed_queries(args.queries, query)
            result["queries_ms"][name] = (p50, p99, worst)
            log(f"[{backend}] {name}: p50 {p50:.2f} ms, p99 {p99:.2f} ms")
        if backend == "sqlite":
            size = await asyncio.to_thread(lambda: sum(p.stat().st_size for p in Path(tmp.name).iterdir()))
            result["size_mb"] = size / 1e6
    finally:
        await store.close()
        tmp.cleanup()
        if backend == "postgres" and not args.keep:
            conn = await asyncpg.connect(args.dsn, timeout=10)
            try:
                await conn.execute(f'DROP SCHEMA IF EXISTS "{schema}" CASCADE')
            finally:
                await conn.close()
    return result


def report(results: list[dict[str, Any]]) -> None:
    for r in results:
        gc = r["group_commit"]
        print(f"\n== {r['backend']}: {r['records']:,} records ==")
        print(f"bulk load                 {r['bulk_records_per_s']:>12,.0f} records/s")
        print(
            f"group commit (100 writers) {gc['issuances_per_s']:>11,.0f} issuances/s "
            f"({gc['commits_per_s']:,.0f} writes/s, {gc['transactions']:,} transactions, "
            f"{gc['ops_per_transaction']:.1f} writes each)"
        )
        print(f"{'query (first page of 50)':<32} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8}")
        for name, (p50, p99, worst) in r["queries_ms"].items():
            print(f"{name:<32} {p50:>8.2f} {p99:>8.2f} {worst:>8.2f}")
        if "size_mb" in r:
            print(f"SQLite file size           {r['size_mb']:,.0f} MB")


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--records", type=int, default=100_000)
    parser.add_argument("--backend", choices=("sqlite", "postgres", "both"), default="both")
    parser.add_argument("--dsn", default=DEFAULT_DSN)
    parser.add_argument("--writers", type=int, default=100)
    parser.add_argument("--per-writer", type=int, default=50)
    parser.add_argument("--queries", type=int, default=200)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--keep", action="store_true", help="keep the PostgreSQL bench schema")
    args = parser.parse_args()
    backends = ["sqlite", "postgres"] if args.backend == "both" else [args.backend]

    async def run_all() -> list[dict[str, Any]]:
        return [await run_backend(b, args) for b in backends]

    report(asyncio.run(run_all()))


if __name__ == "__main__":
    main()
