"""`token-broker audit correlate`: send a kube-apiserver audit log to the broker's POST /v1/audit/correlations,
which joins it to the issuance records the caller may see."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import IO, Any

import click

from broker.cli._endpoint import (
    BrokerEndpoint,
    endpoint_options,
    parse_json,
    problem_from,
    transport_failure,
)
from broker.cli._text import short_time, table
from broker.cli.exit_codes import CliError

from ._group import audit

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
