"""The running broker streams its audit trail to a configured sink, signs checkpoints, reports the sink's lag
on /metrics, and `token-broker audit verify` checks the store it wrote — then finds the row edited behind its
back."""

from __future__ import annotations

import asyncio
import json
import sqlite3
import subprocess
from pathlib import Path

import aiohttp
from e2e_support import mtls_context, post_token, stack_at
from support.processes import TOKEN_BROKER, run


async def wait_for(predicate, what: str, timeout: float = 30) -> None:
    async with asyncio.timeout(timeout):
        while not predicate():
            await asyncio.sleep(0.1)


def verify(config: Path, home: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return run([TOKEN_BROKER, "audit", "verify", "--config", str(config), *args], home=home)


async def test_the_broker_streams_signs_and_verifies(tmp_path: Path) -> None:
    key = tmp_path / "checkpoint.pem"
    subprocess.run(["openssl", "genpkey", "-algorithm", "ed25519", "-out", str(key)], check=True, timeout=30)
    stream = tmp_path / "stream.jsonl"
    audit = "\n".join(
        [
            f'checkpoint_key_file = "{key}"',
            "checkpoint_interval_seconds = 1",
            "sink_poll_interval_seconds = 0.2",
            "[[audit.sinks]]",
            'name = "local"',
            'kind = "file"',
            'format = "ocsf"',
            f'path = "{stream}"',
        ]
    )
    async with stack_at(tmp_path / "demo", audit_config=audit) as stack:
        jenkins = stack.make_caller("jenkins", ["ci"])
        ctx = mtls_context(stack, *jenkins)
        status, _, text = await post_token(stack, ctx, {"role": "deployer", "namespace": stack.namespace})
        assert status == 201, text
        issued = json.loads(text)
        status, _, _ = await post_token(stack, ctx, {"role": "legacy-robot"})
        assert status == 403

        await wait_for(lambda: stream.exists() and len(stream.read_text().splitlines()) >= 2, "the stream")
        first, second = (json.loads(line) for line in stream.read_text().splitlines()[:2])
        assert (first["class_uid"], first["activity_id"], first["status_id"]) == (3002, 4, 1)
        assert first["session"]["credential_uid"] == issued["jti"]
        assert (second["activity_id"], second["status_id"], second["status_code"]) == (4, 2, "403")

        assert stack.broker.store is not None
        backend = stack.broker.store.backend  # type: ignore[attr-defined]

        async def checkpoints() -> int:
            return len(await backend.fetch("SELECT seq FROM audit_checkpoints"))

        async with asyncio.timeout(30):
            while await checkpoints() == 0:
                await asyncio.sleep(0.2)

        async with (
            aiohttp.ClientSession(trust_env=False) as session,
            session.get(stack.broker.listeners.metrics_url + "/metrics") as resp,
        ):
            metrics = await resp.text()
        assert 'token_broker_audit_sink_lag_events{sink="local"} 0.0' in metrics
        assert 'token_broker_audit_sink_delivered_total{sink="local"}' in metrics

        result = verify(stack.paths.config, tmp_path)
        assert result.returncode == 0, result.stdout + result.stderr
        assert "ok: the chain is intact" in result.stdout and "checkpoints: 1 verified" in result.stdout

        database = next(stack.paths.root.glob("*.sqlite3"))
        with sqlite3.connect(database) as db:
            db.execute("UPDATE events SET reason = 'nothing happened' WHERE seq = 2")
        result = verify(stack.paths.config, tmp_path, "--output", "json")
        assert result.returncode == 1
        report = json.loads(result.stdout)
        assert report["first_break"]["kind"] == "edited" and report["first_break"]["seq"] == 2
        assert "the audit chain is broken at seq 2" in result.stderr
