"""`token-broker revoke`: end a token now (DELETE /v1/tokens/{id}) and forget the plugin's cached copy."""

from __future__ import annotations

from urllib.parse import quote

import click

from broker.cli._endpoint import (
    BrokerEndpoint,
    call,
    call_json,
    endpoint_options,
)
from broker.cli.exit_codes import CliError


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
    call(endpoint, "DELETE", f"/v1/tokens/{quote(token_id, safe='')}", json_body=body)
    click.echo(f"revoked {token_id}")
    forgotten = _forget_cached(endpoint, token_id)
    if forgotten:
        click.echo(f"forgot the credential the kubectl plugin cached for it ({forgotten} entry)", err=True)


def _forget_cached(endpoint: BrokerEndpoint, token_id: str) -> int:
    """Best effort: the record names the token's sha256, which the plugin's cache entries carry."""
    from broker.cli.credential_cache import CredentialCache, default_cache_dir

    try:
        items = call_json(endpoint, "GET", "/v1/tokens", params={"token_id": token_id}).get("items", [])
    except CliError:
        return 0
    digest = items[0].get("token_sha256") if items else None
    if not isinstance(digest, str) or not digest:
        return 0
    return CredentialCache(default_cache_dir()).forget_matching(token_sha256=digest)
