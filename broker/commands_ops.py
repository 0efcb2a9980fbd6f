"""Operators' CLI: `token-broker audit list|show|export`, `token-broker revoke`, `token-broker decode`.

The audit commands talk to the broker's HTTP API (GET /v1/tokens, GET /v1/audit, DELETE /v1/tokens/{id});
`decode` works offline on a token and, given a kubeconfig or a JWKS URL, checks its signature. No command ever
prints or logs a token it was given.
"""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import IO, Any, NoReturn
from urllib.parse import quote

import click

from broker.client import BrokerEndpoint, parse_json, problem_from, request, transport_failure
from broker.commands_endpoint import endpoint_options
from broker.durations import parse_duration
from broker.exit_codes import CliError, ExitCode
from broker.tls_client import client_ssl_context

NDJSON = "application/x-ndjson"
_STATES = ("pending", "issued", "failed", "aborted", "revoked", "expired")
_EVENTS = ("issued", "denied", "failed", "aborted", "revoked", "expired")


def _fail(message: str, code: ExitCode = ExitCode.FAILED) -> NoReturn:
    raise CliError(code, message)


def _call(endpoint: BrokerEndpoint, method: str, path: str, **kwargs: Any) -> str:
    _, _, text = asyncio.run(request(endpoint, method, path, **kwargs))
    return text


def _call_json(endpoint: BrokerEndpoint, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    return parse_json(_call(endpoint, method, path, **kwargs), endpoint.url)


# -- times ------------------------------------------------------------------------------------------------------


def _parse_when(value: str | None, *, now: datetime, option: str) -> str | None:
    """RFC 3339 as is, or a duration ("24h", "90m") meaning that long ago."""
    if value is None or not value.strip():
        return None
    value = value.strip()
    try:
        return _rfc3339(now - timedelta(seconds=parse_duration(value)))
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value.upper().replace("Z", "+00:00"))
    except ValueError:
        moment = None
    if moment is None or moment.tzinfo is None:
        raise click.BadParameter(
            "use an RFC 3339 time (2024-05-01T12:00:00Z) or a duration back from now (24h)", param_hint=option
        )
    return _rfc3339(moment)


def _rfc3339(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")


def _parse_time(value: Any) -> datetime | None:
    if not isinstance(value, str) or not value:
        return None
    try:
        parsed = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return parsed if parsed.tzinfo is not None else parsed.replace(tzinfo=UTC)


def _span(seconds: float) -> str:
    seconds = int(abs(seconds))
    days, rest = divmod(seconds, 86400)
    hours, rest = divmod(rest, 3600)
    minutes, secs = divmod(rest, 60)
    parts = [f"{days}d"] if days else []
    if hours:
        parts.append(f"{hours}h")
    if minutes and not days:
        parts.append(f"{minutes}m")
    if not days and not hours:
        parts.append(f"{secs}s")
    return " ".join(parts)


def relative(moment: datetime, now: datetime, *, future: str = "in {}", past: str = "{} ago") -> str:
    delta = (moment - now).total_seconds()
    return future.format(_span(delta)) if delta > 0 else past.format(_span(delta))


def _short_time(value: Any) -> str:
    moment = _parse_time(value)
    return _rfc3339(moment) if moment is not None else "-"


# -- filters shared by list and export ---------------------------------------------------------------------------


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


# -- rendering ---------------------------------------------------------------------------------------------------


def table(rows: Sequence[Sequence[str]], headers: Sequence[str]) -> str:
    widths = [max(len(str(cell)) for cell in column) for column in zip(headers, *rows, strict=False)]
    lines = [
        "  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=False)).rstrip()
        for row in [headers, *rows]
    ]
    return "\n".join(lines)


def _clip(text: str, limit: int = 48) -> str:
    text = " ".join(text.split())
    return text if len(text) <= limit else text[: limit - 1] + "…"


def _who(item: Mapping[str, Any]) -> str:
    caller = item.get("caller") or {}
    return f"{caller.get('user', '')} ({caller.get('method', '')})"


def _token_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    rows = []
    for item in items:
        ends = item.get("revoke_at") or item.get("expires_at")
        rows.append(
            [
                _short_time(item.get("requested_at")),
                str(item.get("token_id", "")),
                str(item.get("state", "")) + ("" if not item.get("active") else " (active)"),
                _who(item),
                str(item.get("role", "")),
                f"{item.get('namespace', '')}/{item.get('service_account', '')}",
                _short_time(ends) if ends else "never",
            ]
        )
    return rows


def _event_rows(items: Sequence[Mapping[str, Any]]) -> list[list[str]]:
    return [
        [
            _short_time(item.get("time")),
            str(item.get("event", "")),
            str(item.get("token_id", "")),
            _who(item),
            str(item.get("role", "")),
            str(item.get("namespace", "")),
            _clip(str(item.get("reason") or "")),
        ]
        for item in items
    ]


TOKEN_HEADERS = ("REQUESTED", "TOKEN ID", "STATE", "CALLER", "ROLE", "SERVICE ACCOUNT", "EXPIRES")
EVENT_HEADERS = ("TIME", "EVENT", "TOKEN ID", "CALLER", "ROLE", "NAMESPACE", "REASON")


# -- audit ---------------------------------------------------------------------------------------------------------


@click.group("audit")
def audit() -> None:
    """Who obtained which token, when, from where, until when — and what became of it."""


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
    doc = _call_json(endpoint, "GET", path, params=params)
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
    text = _call(
        endpoint, "GET", "/v1/audit", params={"token_id": token_id, "format": "jsonl"}, accept=NDJSON
    )
    return [json.loads(line) for line in text.splitlines() if line.strip()]


def describe_token(item: Mapping[str, Any], now: datetime) -> str:
    lines = [f"token {item.get('token_id')}"]

    def add(label: str, value: Any) -> None:
        if value not in (None, "", [], {}):
            lines.append(f"  {label + ':':<16}{value}")

    state = str(item.get("state", ""))
    add("state", state + (" (active)" if item.get("active") else ""))
    add(
        "caller",
        _who(item)
        + (f" groups {', '.join(item['caller']['groups'])}" if item.get("caller", {}).get("groups") else ""),
    )
    add("from", " ".join(p for p in (item.get("source_address"), item.get("user_agent")) if p))
    add("role", item.get("role"))
    add("cluster", item.get("cluster"))
    add("service account", f"{item.get('namespace')}/{item.get('service_account')}")
    add("audiences", ", ".join(item.get("audiences") or []))
    add(
        "ttl",
        "/".join(
            f"{v}s" if v is not None else "default"
            for v in (item.get("ttl_requested"), item.get("ttl_granted"))
        )
        + " (asked/granted)",
    )
    add("requested", _short_time(item.get("requested_at")))
    add("issued", _short_time(item.get("issued_at")) if item.get("issued_at") else None)
    for label, key in (("expires", "expires_at"), ("revoke at", "revoke_at")):
        moment = _parse_time(item.get(key))
        if moment is not None:
            add(label, f"{_rfc3339(moment)} ({relative(moment, now, future='in {}', past='{} ago')})")
    if item.get("issued_at") and not item.get("expires_at"):
        add("expires", "never (legacy Secret token)")
    secret = item.get("bound_secret")
    if secret:
        add("bound Secret", f"{secret['namespace']}/{secret['name']} (deleting it revokes the token)")
    add("jti", item.get("jti"))
    add("token sha256", item.get("token_sha256"))
    for key, value in (item.get("context") or {}).items():
        add(f"context {key}", value)
    add("revoked by", item.get("revoked_by"))
    add("revoked at", _short_time(item.get("revoked_at")) if item.get("revoked_at") else None)
    add("reason", item.get("reason"))
    add("request id", item.get("request_id"))
    return "\n".join(lines)


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
    items = _call_json(endpoint, "GET", "/v1/tokens", params=params).get("items", [])
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


# -- revoke --------------------------------------------------------------------------------------------------------


@click.command("revoke")
@endpoint_options
@click.argument("token_id")
@click.option("--reason", default="", help="Recorded with the revocation.")
def revoke(
    endpoint: BrokerEndpoint,
    token_id: str,
    reason: str,
) -> None:
    """Revoke a token now: the broker deletes the Secret it is bound to, and the API server rejects it.

    If this machine's kubectl plugin cached the token, it forgets it too: the next kubectl command fetches a
    fresh one.
    """
    body = {"reason": reason} if reason else None
    _call(endpoint, "DELETE", f"/v1/tokens/{quote(token_id, safe='')}", json_body=body)
    click.echo(f"revoked {token_id}")
    forgotten = _forget_cached(endpoint, token_id)
    if forgotten:
        click.echo(f"forgot the credential the kubectl plugin cached for it ({forgotten} entry)", err=True)


def _forget_cached(endpoint: BrokerEndpoint, token_id: str) -> int:
    """Best effort: the record names the token's sha256, which the plugin's cache entries carry."""
    from broker.credential_cache import CredentialCache, default_cache_dir

    try:
        items = _call_json(endpoint, "GET", "/v1/tokens", params={"token_id": token_id}).get("items", [])
    except CliError:
        return 0
    digest = items[0].get("token_sha256") if items else None
    if not isinstance(digest, str) or not digest:
        return 0
    return CredentialCache(default_cache_dir()).forget_matching(token_sha256=digest)


# -- decode --------------------------------------------------------------------------------------------------------


def _read_token(token: str) -> str:
    if token == "-":
        token = sys.stdin.read()
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    return token


def _claim_lines(claims: Mapping[str, Any], now: datetime) -> list[str]:
    lines = []
    for name, value in claims.items():
        if name in ("exp", "iat", "nbf") and isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(float(value), UTC)
            if name == "exp":
                when = relative(moment, now, future="expires in {}", past="expired {} ago")
            else:
                when = relative(moment, now)
            shown = f"{_rfc3339(moment)} ({when})"
        elif isinstance(value, str):
            shown = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown = ", ".join(value)
        else:
            shown = json.dumps(value, sort_keys=True)
        lines.append(f"  {name + ':':<16}{shown}")
    return lines


async def _verify(
    token: str,
    *,
    kubeconfig: Path | None,
    context: str | None,
    jwks_url: str | None,
    cacert: Path | None,
    issuer: str | None,
    request_timeout: float,
) -> tuple[bool, str]:
    """(verified, how) — what the cluster's keys say about the signature."""
    import aiohttp

    from broker.errors import BrokerError
    from broker.kube.client import ClusterClient
    from broker.kube.jwks import JwksCache
    from broker.kube.verify import ClusterTokenVerifier
    from broker.operations import InvalidToken, verify_any

    try:
        if kubeconfig is not None:
            async with await ClusterClient.create(
                "decode",
                kubeconfig=kubeconfig,
                context=context,
                in_cluster=False,
                request_timeout=request_timeout,
            ) as client:
                verifier = ClusterTokenVerifier(client, issuer=issuer)
                expected = await verifier.issuer()
                await verify_any(token, verifier.jwks, issuer=expected)
                return True, f"signature verified with the keys of {client.server_url} (issuer {expected})"
        assert jwks_url is not None
        ctx: ssl.SSLContext | bool = (
            client_ssl_context(cafile=cacert) if jwks_url.startswith("https://") else False
        )

        async def fetch() -> tuple[dict[str, Any], float | None]:
            async with (
                aiohttp.ClientSession(
                    timeout=aiohttp.ClientTimeout(total=request_timeout), trust_env=True
                ) as session,
                session.get(jwks_url, ssl=ctx) as resp,
            ):
                resp.raise_for_status()
                document = await resp.json(content_type=None)
            if not isinstance(document, dict):
                raise BrokerError(502, "Bad Gateway", f"{jwks_url} is not a JSON Web Key Set")
            return document, None

        await verify_any(token, JwksCache(fetch, label=jwks_url), issuer=issuer)
        checked = f" and issuer {issuer}" if issuer else " (issuer not checked: pass --issuer)"
        return True, f"signature verified with the keys at {jwks_url}{checked}"
    except InvalidToken as exc:
        return False, f"signature NOT valid: {exc}"
    except BrokerError as exc:
        return False, f"signature not verified: cannot get the keys: {exc.detail}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        failure = transport_failure(exc, jwks_url or str(kubeconfig), request_timeout)
        return False, f"signature not verified: cannot get the keys: {failure.message}"
    except ValueError as exc:
        return False, f"signature not verified: cannot get the keys: {exc}"


@click.command("decode")
@click.argument("token")
@click.option(
    "--kubeconfig",
    type=click.Path(dir_okay=False, exists=True, path_type=Path),
    help="Verify the signature with the keys of this cluster.",
)
@click.option("--context", help="Kubeconfig context (default: the current one).")
@click.option("--jwks-url", help="Verify the signature with the JSON Web Key Set at this URL.")
@click.option(
    "--cacert", type=click.Path(dir_okay=False, exists=True, path_type=Path), help="CA for --jwks-url."
)
@click.option("--issuer", help="The issuer the token must name (default with --kubeconfig: the cluster's).")
@click.option("--timeout", type=click.FloatRange(0.1, 300), default=10.0, show_default=True)
@click.option("--output", type=click.Choice(["text", "json"]), default="text", show_default=True)
def decode(
    token: str,
    kubeconfig: Path | None,
    context: str | None,
    jwks_url: str | None,
    cacert: Path | None,
    issuer: str | None,
    timeout: float,
    output: str,
) -> None:
    """Show a token's header and claims (TOKEN, or - to read it from stdin); with --kubeconfig or --jwks-url,
    check its signature too. Exit status 1 when a signature check was asked for and failed."""
    from broker.kube.verify import decode_unverified

    if kubeconfig is not None and jwks_url is not None:
        raise click.UsageError("--kubeconfig and --jwks-url are two ways to get the keys: give one")
    raw = _read_token(token)
    try:
        unverified = decode_unverified(raw)
    except ValueError as exc:
        _fail(str(exc))
    verified: bool | None = None
    how = "signature not verified (pass --kubeconfig or --jwks-url to check it)"
    if kubeconfig is not None or jwks_url is not None:
        verified, how = asyncio.run(
            _verify(
                raw,
                kubeconfig=kubeconfig,
                context=context,
                jwks_url=jwks_url,
                cacert=cacert,
                issuer=issuer,
                request_timeout=timeout,
            )
        )
    if output == "json":
        doc = {
            "header": unverified.header,
            "claims": unverified.claims,
            "verified": verified,
            "signature": how,
        }
        click.echo(json.dumps(doc, indent=2, sort_keys=True))
    else:
        now = datetime.now(UTC)
        lines = [
            "header:",
            *_claim_lines(unverified.header, now),
            "claims:",
            *_claim_lines(unverified.claims, now),
        ]
        lines.append(how)
        jti = unverified.claims.get("jti")
        if isinstance(jti, str) and jti:
            lines.append(f"its record: token-broker audit show --jti {jti}")
        click.echo("\n".join(lines))
    if verified is False:
        sys.exit(ExitCode.FAILED)
