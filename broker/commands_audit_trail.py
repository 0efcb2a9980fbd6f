"""`token-broker audit verify` and `token-broker audit correlate`, added to the `audit` group of commands_ops.

verify reads the audit store itself (SQLite file or PostgreSQL, from the config's [audit] section): checking the
trail must not depend on the broker that wrote it. correlate sends a kube-apiserver audit log to the broker's
POST /v1/audit/correlations, which joins it to the issuance records the caller may see.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import click

from broker.cli_text import short_time, table
from broker.client import BrokerEndpoint, parse_json, problem_from, transport_failure
from broker.commands_endpoint import endpoint_options
from broker.commands_ops import audit
from broker.exit_codes import CliError, ExitCode

__all__ = ["audit"]

# -- verify --------------------------------------------------------------------------------------------------------


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


# -- correlate -----------------------------------------------------------------------------------------------------

NDJSON = "application/x-ndjson"
REQUEST_HEADERS = ("TIME", "VERB", "RESOURCE", "NAMESPACE", "NAME", "CODE")


def matching_lines(log: IO[bytes]) -> Iterator[bytes]:
    """The lines that can name a token's jti (the broker parses them); the rest never leaves this machine."""
    from broker.audit.correlate import MARKER

    for line in log:
        if MARKER in line:
            yield line if line.endswith(b"\n") else line + b"\n"


async def _upload(endpoint: BrokerEndpoint, path: Path, jti: str | None) -> dict[str, Any]:
    import aiohttp

    async def body() -> AsyncIterator[bytes]:
        with path.open("rb") as log:
            chunk: list[bytes] = []
            size = 0
            for line in matching_lines(log):
                chunk.append(line)
                size += len(line)
                if size >= 1 << 16:
                    yield b"".join(chunk)
                    chunk, size = [], 0
            if chunk:
                yield b"".join(chunk)

    endpoint.check_url()
    # no total timeout: a large log takes a while to send; each read still has one
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=endpoint.timeout, sock_read=endpoint.timeout * 4)
    headers = {"Accept": "application/json", "Content-Type": NDJSON, **endpoint.headers()}
    params = {"jti": jti} if jti else None
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.post(
                endpoint.url.rstrip("/") + "/v1/audit/correlations",
                data=body(),
                params=params,
                headers=headers,
                ssl=endpoint.ssl_context(),
            ) as resp,
        ):
            if resp.status >= 400:
                raise await problem_from(resp)
            return parse_json(await resp.text(), endpoint.url)
    except CliError:
        raise
    except (aiohttp.ClientError, TimeoutError) as exc:
        raise transport_failure(exc, endpoint.url, endpoint.timeout) from None


def _correlate_text(report: dict[str, Any]) -> str:
    blocks = []
    for token in report.get("tokens", []):
        record = token.get("token")
        if record is None:
            users = {r.get("username") for r in token.get("requests", [])} - {""}
            head = f"jti {token['jti']}: not issued by this broker ({', '.join(sorted(users)) or 'unknown user'})"
        else:
            caller = record.get("caller") or {}
            head = (
                f"token {record.get('token_id')}  jti {token['jti']}\n"
                f"  issued to {caller.get('user')} ({caller.get('method')}) as "
                f"{record.get('namespace')}/{record.get('service_account')}, role {record.get('role')}, "
                f"cluster {record.get('cluster')}; {record.get('state')}, "
                f"{short_time(record.get('issued_at') or record.get('requested_at'))} → "
                f"{short_time(record.get('expires_at')) if record.get('expires_at') else 'no expiry'}"
            )
        rows = [
            [
                str(r.get("time", "")),
                str(r.get("verb", "")),
                str(r.get("resource") or r.get("request_uri", "")),
                str(r.get("namespace", "")),
                str(r.get("name", "")),
                str(r.get("code", "")),
            ]
            for r in token.get("requests", [])
        ]
        dropped = token.get("requests_dropped") or 0
        more = f"\n  … and {dropped} more requests (not listed)" if dropped else ""
        blocks.append(f"{head}\n{table(rows, REQUEST_HEADERS)}{more}")
    summary = (
        f"{len(report.get('tokens', []))} tokens, {report.get('events_matched', 0)} requests "
        f"({report.get('lines', 0)} lines sent, {report.get('unparsable_lines', 0)} unparsable)"
    )
    return "\n\n".join([*blocks, summary])


@audit.command("correlate")
@endpoint_options
@click.option(
    "--k8s-audit-log",
    "log_path",
    required=True,
    type=click.Path(exists=True, dir_okay=False, path_type=Path),
    help="The kube-apiserver audit log (JSON lines, as --audit-log-path writes it).",
)
@click.option("--jti", help="Only this token (an audit event's credential-id JTI=… is accepted as it is).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def audit_correlate(endpoint: BrokerEndpoint, log_path: Path, jti: str | None, output: str) -> None:
    """What each token did in the cluster: the requests the audit log shows it made (verb, resource,
    namespace, response code, time), listed under the token's issuance record."""
    if jti is not None:
        jti = jti.strip().strip('"').removeprefix("JTI=")
    report = asyncio.run(_upload(endpoint, log_path, jti))
    if output == "json":
        json.dump(report, sys.stdout, indent=2)
        click.echo("")
        return
    click.echo(_correlate_text(report))
