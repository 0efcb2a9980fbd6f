"""`token-broker audit verify --config`: reads the store the config names, SQLite or PostgreSQL, by itself."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

from audit_support import SettingsFactory, issue
from click.testing import CliRunner, Result
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from broker.app.stores import make_sql_store
from broker.audit.backend import Tx
from broker.audit.checkpoints import Checkpointer
from broker.cli import main
from broker.settings import AuditSettings


def write_config(path: Path, audit: AuditSettings, key: Path | None = None) -> Path:
    lines = [f'backend = "{audit.backend}"']
    if audit.backend == "postgres":
        lines += [f'postgres_dsn = "{audit.postgres_dsn}"', f'postgres_schema = "{audit.postgres_schema}"']
    else:
        lines.append(f'sqlite_path = "{audit.sqlite_path}"')
    if key is not None:
        lines.append(f'checkpoint_key_file = "{key}"')
    path.write_text(
        '[server]\nlisten = "127.0.0.1:8443"\ntls_cert = "s.crt"\ntls_key = "s.key"\n\n'
        '[[clusters]]\nname = "prod"\nin_cluster = true\n\n[auth.kubernetes]\nenabled = true\n\n'
        "[audit]\n" + "\n".join(lines) + "\n"
    )
    return path


async def run(*args: str) -> Result:
    # the command runs its own event loop: off this one
    return await asyncio.to_thread(CliRunner().invoke, main, ["audit", "verify", *args])


async def test_verify_on_the_configured_store(make_settings: SettingsFactory, tmp_path: Path) -> None:
    key = Ed25519PrivateKey.generate()
    key_file = tmp_path / "checkpoint.pem"
    key_file.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    settings = make_settings()
    config = write_config(tmp_path / "config.toml", settings, key_file)
    async with make_sql_store(settings) as store:
        for _ in range(3):
            await issue(store)
        await Checkpointer(store, key).checkpoint_once()

        result = await run("--config", str(config))
        assert result.exit_code == 0, result.output
        assert "events 1..3: 3 checked" in result.output and "checkpoints: 1 verified of 1" in result.output

        async def edit(tx: Tx) -> None:
            await tx.execute("UPDATE events SET namespace = 'elsewhere' WHERE seq = 2")

        await store.in_writer(edit)
        result = await run("--config", str(config), "--output", "json")
        assert result.exit_code == 1
        report = json.loads(result.stdout)
        assert report["ok"] is False and report["first_break"]["seq"] == 2
        assert report["first_break"]["kind"] == "edited"


async def test_a_config_that_does_not_load_is_a_usage_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text("[server]\n")
    result = await run("--config", str(bad))
    assert result.exit_code == 2


async def test_config_check_names_the_sink_files_it_cannot_use(tmp_path: Path) -> None:
    config = write_config(tmp_path / "config.toml", AuditSettings(sqlite_path=tmp_path / "a.sqlite3"))
    (tmp_path / "not-a-key.pem").write_text("nothing\n")
    config.write_text(
        config.read_text()
        + f'checkpoint_key_file = "{tmp_path / "not-a-key.pem"}"\n'
        + '[[audit.sinks]]\nname = "siem"\nkind = "syslog"\naddress = "siem:6514"\ntls = true\n'
        + f'ca_file = "{tmp_path / "missing-ca.pem"}"\n'
        + '[[audit.sinks]]\nname = "hook"\nkind = "webhook"\nurl = "https://h/in"\n'
        + f'bearer_token_file = "{tmp_path / "missing-token"}"\n'
        + f'[[audit.sinks]]\nname = "local"\nkind = "file"\npath = "{tmp_path / "nowhere" / "a.jsonl"}"\n'
    )
    result = await asyncio.to_thread(CliRunner().invoke, main, ["config", "check", str(config)])
    assert result.exit_code == 2
    assert (
        f"audit.sinks[0]: CA bundle {tmp_path / 'missing-ca.pem'}: No such file or directory" in result.output
    )
    assert f"audit.sinks[1]: {tmp_path / 'missing-token'}: No such file or directory" in result.output
    assert "audit.sinks[2].path:" in result.output and "does not exist" in result.output
    assert "audit.checkpoint_key_file:" in result.output and "not a PEM private key" in result.output
