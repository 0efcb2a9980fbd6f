"""`token-broker decode`: a token's header and claims, offline; with a kubeconfig or a JWKS URL, its signature
checked against the cluster's keys. Never prints or logs the token itself."""

from __future__ import annotations

import asyncio
import json
import ssl
import sys
from collections.abc import Mapping
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import click

from broker._kits.rfc3339 import format_time
from broker._kits.tls import client_ssl_context
from broker.cli._endpoint import transport_failure
from broker.cli._text import aligned, relative
from broker.cli.exit_codes import CliError, ExitCode


def _read_token(token: str) -> str:
    if token == "-":
        token = sys.stdin.read()
    token = token.strip()
    if token.lower().startswith("bearer "):
        token = token[7:].strip()
    return token


def _claim_lines(claims: Mapping[str, Any], now: datetime) -> list[str]:
    pairs = []
    for name, value in claims.items():
        if name in ("exp", "iat", "nbf") and isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(float(value), UTC)
            if name == "exp":
                when = relative(moment, now, future="expires in {}", past="expired {} ago")
            else:
                when = relative(moment, now)
            shown = f"{format_time(moment)} ({when})"

        elif isinstance(value, str):
            shown = value
        elif isinstance(value, list) and all(isinstance(v, str) for v in value):
            shown = ", ".join(value)
        else:
            shown = json.dumps(value, sort_keys=True)
        pairs.append((name, shown))
    return aligned(pairs)


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

    from broker._kits.jwt import InvalidToken
    from broker.domain.errors import BrokerError

    try:
        if kubeconfig is not None:
            return True, await _verify_with_cluster(token, kubeconfig, context, issuer, request_timeout)
        assert jwks_url is not None
        return True, await _verify_with_url(token, jwks_url, cacert, issuer, request_timeout)
    except InvalidToken as exc:
        return False, f"signature NOT valid: {exc}"
    except BrokerError as exc:
        return False, f"signature not verified: cannot get the keys: {exc.detail}"
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        failure = transport_failure(exc, jwks_url or str(kubeconfig), request_timeout)
        return False, f"signature not verified: cannot get the keys: {failure.message}"
    except ValueError as exc:
        return False, f"signature not verified: cannot get the keys: {exc}"


async def _verify_with_cluster(
    token: str, kubeconfig: Path, context: str | None, issuer: str | None, request_timeout: float
) -> str:
    from broker._kits.jwt import verify_any
    from broker.kube import Cluster
    from broker.kube.verify import ClusterTokenVerifier

    async with await Cluster.connect(
        "decode", kubeconfig=kubeconfig, context=context, in_cluster=False, request_timeout=request_timeout
    ) as client:
        verifier = ClusterTokenVerifier(client.discovery, issuer=issuer)
        expected = await verifier.issuer()
        await verify_any(token, verifier.jwks, issuer=expected)
        return f"signature verified with the keys of {client.server_url} (issuer {expected})"


async def _verify_with_url(
    token: str, jwks_url: str, cacert: Path | None, issuer: str | None, request_timeout: float
) -> str:
    import aiohttp

    from broker._kits.jwks import JwksCache
    from broker._kits.jwt import verify_any
    from broker.domain.errors import upstream_refused

    ctx: ssl.SSLContext | bool = (
        client_ssl_context(cafile=cacert) if jwks_url.startswith("https://") else False
    )

    async def fetch() -> tuple[dict[str, Any], float | None]:
        timeout = aiohttp.ClientTimeout(total=request_timeout)
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=True) as session,
            session.get(jwks_url, ssl=ctx) as resp,
        ):
            resp.raise_for_status()
            document = await resp.json(content_type=None)
        if not isinstance(document, dict):
            raise upstream_refused(f"{jwks_url} is not a JSON Web Key Set")
        return document, None

    await verify_any(token, JwksCache(fetch, label=jwks_url), issuer=issuer)
    checked = f" and issuer {issuer}" if issuer else " (issuer not checked: pass --issuer)"
    return f"signature verified with the keys at {jwks_url}{checked}"


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
    from broker._kits.jwt import decode_unverified

    if kubeconfig is not None and jwks_url is not None:
        raise click.UsageError("--kubeconfig and --jwks-url are two ways to get the keys: give one")
    raw = _read_token(token)
    try:
        unverified = decode_unverified(raw)
    except ValueError as exc:
        raise CliError(ExitCode.FAILED, str(exc)) from None
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
