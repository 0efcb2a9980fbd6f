"""`token-broker audit verify`: walk the audit trail's hash chain in the store itself (SQLite file or
PostgreSQL, from the config's [audit] section): checking the trail must not depend on the broker that wrote it."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import click

from broker.cli.exit_codes import CliError, ExitCode

from ._group import audit


@audit.command("verify")
@click.option(
    "--config",
    "config_path",
    type=click.Path(dir_okay=False, path_type=Path),
    required=True,
    help="The broker's config: its [audit] section says where the store is.",
)
@click.option(
    "--public-key",
    "public_keys",
    multiple=True,
    type=click.Path(dir_okay=False, path_type=Path),
    help="An ed25519 public key (PEM) the checkpoints are signed with; repeat for rotated keys. Default: the "
    "public half of [audit] checkpoint_key_file.",
)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def audit_verify(config_path: Path, public_keys: tuple[Path, ...], output: str) -> None:
    """Walk the audit trail's hash chain and report the first break: an edited, deleted, reordered or
    inserted event, or (with a key) a chain rewritten past a signed checkpoint. Exit status 1 on a break."""
    from broker.app.stores import make_backend
    from broker.audit.checkpoints import CheckpointKeyError, load_public_key
    from broker.audit.verify import verify_chain
    from broker.domain.errors import BrokerError
    from broker.settings import ConfigError, load_config

    try:
        settings = load_config(config_path).audit
    except ConfigError as err:
        raise CliError(ExitCode.USAGE, str(err)) from None
    paths = list(public_keys) or ([settings.checkpoint_key_file] if settings.checkpoint_key_file else [])
    try:
        keys = [load_public_key(p) for p in paths]
    except CheckpointKeyError as err:
        raise CliError(ExitCode.LOCAL_FILE, str(err)) from None

    async def run() -> Any:
        backend = make_backend(settings)
        await backend.connect()
        try:
            return await verify_chain(backend, keys)
        finally:
            await backend.close()

    try:
        result = asyncio.run(run())
    except BrokerError as err:
        raise CliError(ExitCode.UNAVAILABLE, f"{err.detail}: {err.reason}") from None
    found = result.first_break
    if output == "json":
        click.echo(
            json.dumps(
                {
                    "ok": result.ok,
                    "events": result.events,
                    "anchor": {"seq": result.anchor.seq, "hash": result.anchor.hash},
                    "head": {"seq": result.head.seq, "hash": result.head.hash},
                    "checkpoints": result.checkpoints,
                    "checkpoints_checked": result.checkpoints_checked,
                    "first_break": None
                    if found is None
                    else {"kind": found.kind.value, "seq": found.seq, "event_id": found.event_id},
                },
                indent=2,
            )
        )
    else:
        click.echo(_verify_text(result, bool(keys)))
    if found is not None:
        raise CliError(ExitCode.FAILED, f"the audit chain is broken at seq {found.seq}: {found.description}")


def _verify_text(result: Any, keyed: bool) -> str:
    start = f" (retention trimmed up to seq {result.anchor.seq})" if result.anchor.seq else ""
    if result.head.seq == 0:
        lines = ["no events yet"]
    else:
        lines = [f"events {result.anchor.seq + 1}..{result.head.seq}: {result.events} checked{start}"]
    if keyed:
        lines.append(
            f"checkpoints: {result.checkpoints_checked} verified of {result.checkpoints}"
            + (
                f" ({result.checkpoints_before_anchor} before the retained chain)"
                if result.checkpoints_before_anchor
                else ""
            )
        )
    elif result.checkpoints:
        lines.append(
            f"checkpoints: {result.checkpoints} stored, not verified (no --public-key, no checkpoint key)"
        )
    if result.first_break is None:
        lines.append(f"ok: the chain is intact; head seq {result.head.seq} hash {result.head.hash}")
    else:
        found = result.first_break
        where = f" (event {found.event_id})" if found.event_id else ""
        lines.append(f"BROKEN at seq {found.seq}{where}: {found.kind.value}: {found.description}")
    return "\n".join(lines)
