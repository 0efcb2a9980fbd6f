"""`token-broker audit list|show|export`: the broker's records through its HTTP API (GET /v1/tokens,
GET /v1/audit). No command ever prints or logs a token."""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn

import click

from broker._kits.durations import parse_duration
from broker._kits.rfc3339 import format_time, parse_time
from broker.cli._endpoint import (
    BrokerEndpoint,
    call,
    call_json,
    endpoint_options,
    problem_from,
    transport_failure,
)
from broker.cli._text import aligned, clip, relative, short_time, table, time_in
from broker.cli.exit_codes import CliError, ExitCode

from ._group import audit

NDJSON = "application/x-ndjson"
_STATES = ("pending", "issued", "failed", "aborted", "revoked", "expired")
_EVENTS = ("issued", "denied", "failed", "aborted", "revoked", "expired")


def _fail(message: str, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    raise CliError(code, message)


def _parse_when(value: str | None, *, now: datetime, option: str) -> str | None:
    """RFC 3339 as is, or a duration ("24h", "90m") meaning that long ago."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return format_time(now - timedelta(seconds=parse_duration(value)))
    except ValueError:
        pass
    try:
        return format_time(parse_time(value))
    except ValueError:
        raise click.BadParameter(
            "use an RFC 3339 time (2024-05-01T12:00:00Z) or a duration back from now (24h)", param_hint=option
        ) from None


def filter_options(fn: Any) -> Any:
    options = [
        click.option("--caller", help="Only this caller's records (user name)."),
        click.option("--role"),
        click.option("--namespace"),
        click.option("--cluster"),
        click.option("--state", type=click.Choice(_STATES), help="Tokens in this state (not with --events)."),
        click.option(
            "--active/--inactive",
            "active",
            default=None,
            help="Tokens live now, or all others (not with --events).",
        ),
        click.option("--events", is_flag=True, help="The audit log of decisions instead of the tokens."),
        click.option("--event", type=click.Choice(_EVENTS), help="With --events: only this decision."),
        click.option("--since", help="RFC 3339 time, or a duration back from now (24h)."),
        click.option("--until", help="RFC 3339 time, or a duration back from now."),
    ]
    for option in reversed(options):
        fn = option(fn)
    return fn


def _filter_params(
    *,
    caller: str | None,
    role: str | None,
    namespace: str | None,
    cluster: str | None,
    state: str | None,
    active: bool | None,
    events: bool,
    event: str | None,
    since: str | None,
    until: str | None,
) -> tuple[str, dict[str, str]]:
    """(path, query parameters) for the listing these options describe."""
    if events and (state is not None or active is not None):
        raise click.UsageError("--state and --active/--inactive describe tokens; with --events use --event")
    if event is not None and not events:
        raise click.UsageError("--event filters the audit log: add --events (for tokens use --state)")
    now = datetime.now(UTC)
    params = {
        "caller": caller,
        "role": role,
        "namespace": namespace,
        "cluster": cluster,
        "state": state,
        "event": event,
        "active": None if active is None else str(active).lower(),
        "since": _parse_when(since, now=now, option="--since"),
        "until": _parse_when(until, now=now, option="--until"),
    }
    return ("/v1/audit" if events else "/v1/tokens"), {k: v for k, v in params.items() if v is not None}


def _who(item: Mapping[str, Any]) -> str:
    caller = item.get("caller") or {}
    return f"{caller.get('user', '')} ({caller.get('method', '')})"


def _token_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for item in items:
        ends = item.get("revoke_at") or item.get("expires_at")
        rows.append(
            [
                short_time(item.get("requested_at")),
                str(item.get("token_id", "")),
                str(item.get("state", "")) + ("" if not item.get("active") else " (active)"),
                _who(item),
                str(item.get("role", "")),
                f"{item.get('namespace', '')}/{item.get('service_account', '')}",
                short_time(ends) if ends else "never",
            ]
        )
    return rows


def _event_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            short_time(item.get("time")),
            str(item.get("event", "")),
            str(item.get("token_id", "")),
            _who(item),
            str(item.get("role", "")),
            str(item.get("namespace", "")),
            clip(str(item.get("reason") or "")),
        ]
        for item in items
    ]


TOKEN_HEADERS = ("REQUESTED", "TOKEN ID", "STATE", "CALLER", "ROLE", "SERVICE ACCOUNT", "EXPIRES")
EVENT_HEADERS = ("TIME", "EVENT", "TOKEN ID", "CALLER", "ROLE", "NAMESPACE", "REASON")


@audit.command("list")
@endpoint_options
@filter_options
@click.option("--limit", type=click.IntRange(1, 1000), default=50, show_default=True, help="Rows per page.")
@click.option("--cursor", help="Continue after a previous page (its next cursor).")
@click.option("--output", type=click.Choice(["table", "json"]), default="table", show_default=True)
def audit_list(
    endpoint: BrokerEndpoint,
    limit: int,
    cursor: str | None,
    output: str,
    **filters: Any,
) -> None:
    """One page of issued tokens (or, with --events, of the audit log), newest first."""
    path, params = _filter_params(**filters)
    params["limit"] = str(limit)
    if cursor:
        params["cursor"] = cursor
    doc = call_json(endpoint, "GET", path, params=params)
    if output == "json":
        click.echo(json.dumps(doc, indent=2))
        return
    items = doc.get("items", [])
    if not items:
        click.echo("no records", err=True)
    elif filters["events"]:
        click.echo(table(_event_rows(items), EVENT_HEADERS))
    else:
        click.echo(table(_token_rows(items), TOKEN_HEADERS))
    if doc.get("next_cursor"):
        click.echo(f"more: add --cursor {doc['next_cursor']}", err=True)


def _all_events(endpoint: BrokerEndpoint, token_id: str) -> list[dict[str, Any]]:
    text = call(endpoint, "GET", "/v1/audit", params={"token_id": token_id, "format": "jsonl"}, accept=NDJSON)
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def describe_token(item: Mapping[str, Any], now: datetime) -> str:
    pairs = [*_who_rows(item), *_time_rows(item, now), *_proof_rows(item)]
    shown = [(label, str(value)) for label, value in pairs if value not in (None, "", [], {})]
    return "\n".join([f"token {item.get('token_id')}", *aligned(shown)])


def _who_rows(item: Mapping[str, Any]) -> list[tuple[str, Any]]:
    groups = item.get("caller", {}).get("groups")
    return [
        ("state", str(item.get("state", "")) + (" (active)" if item.get("active") else "")),
        ("caller", _who(item) + (f" groups {', '.join(groups)}" if groups else "")),
        ("from", " ".join(p for p in (item.get("source_address"), item.get("user_agent")) if p)),
        ("role", item.get("role")),
        ("cluster", item.get("cluster")),
        ("service account", f"{item.get('namespace')}/{item.get('service_account')}"),
        ("audiences", ", ".join(item.get("audiences") or [])),
    ]


def _time_rows(item: Mapping[str, Any], now: datetime) -> list[tuple[str, Any]]:
    ttls = (item.get("ttl_requested"), item.get("ttl_granted"))
    rows: list[tuple[str, Any]] = [
        ("ttl", "/".join(f"{v}s" if v is not None else "default" for v in ttls) + " (asked/granted)"),
        ("requested", short_time(item.get("requested_at"))),
        ("issued", short_time(item.get("issued_at")) if item.get("issued_at") else None),
    ]
    for label, key in (("expires", "expires_at"), ("revoke at", "revoke_at")):
        moment = time_in(item.get(key))
        if moment is not None:
            rows.append(
                (label, f"{format_time(moment)} ({relative(moment, now, future='in {}', past='{} ago')})")
            )
    if item.get("issued_at") and not item.get("expires_at"):
        rows.append(("expires", "never (legacy Secret token)"))
    return rows


def _proof_rows(item: Mapping[str, Any]) -> list[tuple[str, Any]]:
    secret = item.get("bound_secret")
    rows: list[tuple[str, Any]] = [
        (
            "bound Secret",
            f"{secret['namespace']}/{secret['name']} (deleting it revokes the token)" if secret else None,
        ),
        ("jti", item.get("jti")),
        ("token sha256", item.get("token_sha256")),
    ]
    rows += [(f"context {key}", value) for key, value in (item.get("context") or {}).items()]
    return [
        *rows,
        ("revoked by", item.get("revoked_by")),
        ("revoked at", short_time(item.get("revoked_at")) if item.get("revoked_at") else None),
        ("reason", item.get("reason")),
        ("request id", item.get("request_id")),
    ]


@audit.command("show")
@endpoint_options
@click.argument("token_id", required=False)
@click.option("--jti", help="The JWT id a Kubernetes audit event names (credential-id JTI=…).")
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def audit_show(
    endpoint: BrokerEndpoint,
    token_id: str | None,
    jti: str | None,
    output: str,
) -> None:
    """One token's record and its history, by token id or by jti."""
    if (token_id is None) == (jti is None):
        raise click.UsageError("give a TOKEN_ID or --jti, not both")
    if jti is not None:
        # accept the audit event's value as it is: credential-id "JTI=<uuid>"
        jti = jti.strip().strip('"').removeprefix("JTI=")
    params = {"jti": jti} if jti is not None else {"token_id": str(token_id)}
    items = call_json(endpoint, "GET", "/v1/tokens", params=params).get("items", [])
    if not items:
        _fail(f"no token with {'jti ' + str(jti) if jti else 'id ' + str(token_id)} that you may see")
    item = items[0]
    events = _all_events(endpoint, str(item["token_id"]))
    if output == "json":
        click.echo(json.dumps({"token": item, "events": events}, indent=2))
        return
    click.echo(describe_token(item, datetime.now(UTC)))
    click.echo("")
    if events:
        click.echo(table(_event_rows(events), EVENT_HEADERS))
    else:
        click.echo("no events (still pending, or past the audit retention)")


async def _stream_to(endpoint: BrokerEndpoint, path: str, params: Mapping[str, str], out: IO[bytes]) -> int:
    import aiohttp

    # no total timeout: a large export may take a while; each read still has one
    timeout = aiohttp.ClientTimeout(total=None, sock_connect=endpoint.timeout, sock_read=endpoint.timeout)
    headers = {"Accept": NDJSON, **endpoint.headers()}
    count = 0
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.get(
                endpoint.url.rstrip("/") + path,
                params=dict(params),
                headers=headers,
                ssl=endpoint.ssl_context(),
            ) as resp,
        ):
            if resp.status >= 400:
                raise await problem_from(resp)
            async for chunk in resp.content.iter_chunked(1 << 16):
                _write(out, chunk)
                count += chunk.count(b"\n")
    except CliError:
        raise
    except aiohttp.ClientPayloadError:
        raise CliError(
            ExitCode.UNAVAILABLE,
            "the export was cut off by the broker (see its log); the output is incomplete",
        ) from None
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        failure = transport_failure(exc, endpoint.url, endpoint.timeout)
        if count:
            raise CliError(failure.code, f"{failure.message}; the output is incomplete") from None
        raise failure from None
    out.flush()
    return count


def _write(out: IO[bytes], chunk: bytes) -> None:
    try:
        out.write(chunk)
    except OSError as exc:
        raise CliError(ExitCode.LOCAL_FILE, f"cannot write the export: {exc.strerror or exc}") from None


@audit.command("export")
@endpoint_options
@filter_options
@click.option(
    "--limit", type=click.IntRange(1, 100_000), help="At most this many records (server cap 100000)."
)
@click.option(
    "--out", "out_path", type=click.Path(dir_okay=False, path_type=Path), help="File (default stdout)."
)
def audit_export(
    endpoint: BrokerEndpoint,
    limit: int | None,
    out_path: Path | None,
    **filters: Any,
) -> None:
    """Every matching record as JSON lines (for a SIEM or jq): `token-broker audit export --since 24h > day.jsonl`."""
    path, params = _filter_params(**filters)
    params["format"] = "jsonl"
    if limit:
        params["limit"] = str(limit)
    out = out_path.open("wb") if out_path is not None else sys.stdout.buffer
    try:
        count = asyncio.run(_stream_to(endpoint, path, params, out))
    finally:
        if out_path is not None:
            out.close()
    cap = limit or 100_000
    note = f"; stopped at the cap of {cap}: narrow --since/--until for the rest" if count >= cap else ""
    click.echo(f"exported {count} records{note}", err=True)
