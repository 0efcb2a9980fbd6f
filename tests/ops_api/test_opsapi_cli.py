"""`token-broker audit list|show|export`, `revoke`, `decode` against a served broker API, a real SQLite store and
the simulator. The CLI runs in a worker thread (it has its own event loop) while the servers answer here."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner, Result
from ops_api_support import ALICE, ALICE_API_KEY, BOB, CLUSTER, OPS, Api, call_as_token, mint, record_issued

from broker.audit import SqlAuditStore
from broker.cli import main
from broker.cli._text import relative, table
from broker.cli.exit_codes import ExitCode
from broker.kube import Cluster
from broker.usecases.clusters import ClusterHandle
from kubesim import KubeSim, SimOptions


async def cli(*args: str, stdin: str | None = None) -> Result:
    runner = CliRunner()
    return await asyncio.to_thread(runner.invoke, main, list(args), input=stdin, catch_exceptions=False)


def as_who(api: Api, who: str = "ops") -> list[str]:
    base = ["--broker", api.url, "--cacert", str(api.pki.path("server-ca.crt"))]
    if who == "alice-key":
        return [*base, "--api-key-file", str(api.pki.path("alice.apikey"))]
    return [*base, "--cert", str(api.pki.path(f"{who}.crt")), "--key", str(api.pki.path(f"{who}.key"))]


async def test_audit_list_table_json_and_paging(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    now = datetime.now(UTC)
    made = [
        await record_issued(store, c, began=now - timedelta(minutes=i))
        for i, c in enumerate([OPS, ALICE, BOB])
    ]
    api: Api = await make_api(store)

    result = await cli("audit", "list", *as_who(api))
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert lines[0].split()[:3] == ["REQUESTED", "TOKEN", "ID"]
    assert [line.split()[1] for line in lines[1:]] == [r.id for r in made]
    assert "alice (mtls)" in result.stdout and "issued (active)" in result.stdout

    result = await cli("audit", "list", *as_who(api), "--limit", "2", "--output", "json")
    page = json.loads(result.stdout)
    assert len(page["items"]) == 2 and page["next_cursor"]
    result = await cli("audit", "list", *as_who(api), "--limit", "2")
    assert f"more: add --cursor {page['next_cursor']}" in result.stderr
    result = await cli(
        "audit", "list", *as_who(api), "--limit", "2", "--cursor", page["next_cursor"], "--output", "json"
    )
    assert [i["token_id"] for i in json.loads(result.stdout)["items"]] == [made[2].id]

    # an owner sees its own only; filters pass through
    result = await cli("audit", "list", *as_who(api, "alice"), "--output", "json")
    assert [i["token_id"] for i in json.loads(result.stdout)["items"]] == [made[1].id]
    assert await store.mark_revoked(made[2].id, by="ops", at=now, reason="test")
    result = await cli(
        "audit", "list", *as_who(api), "--state", "revoked", "--since", "1h", "--output", "json"
    )
    assert [i["token_id"] for i in json.loads(result.stdout)["items"]] == [made[2].id]
    result = await cli("audit", "list", *as_who(api), "--inactive", "--output", "json")
    assert [i["token_id"] for i in json.loads(result.stdout)["items"]] == [made[2].id]
    result = await cli("audit", "list", *as_who(api), "--events", "--event", "revoked")
    assert result.exit_code == 0 and result.stdout.splitlines()[0].startswith("TIME")
    assert "revoked" in result.stdout and made[2].id in result.stdout and "test" in result.stdout

    result = await cli("audit", "list", *as_who(api), "--role", "nothing")
    assert result.exit_code == 0 and "no records" in result.stderr
    # bad input: refused before or by the broker, with the reason
    result = await cli("audit", "list", *as_who(api), "--since", "last tuesday")
    assert result.exit_code == 2 and "--since" in result.output
    result = await cli("audit", "list", *as_who(api), "--events", "--state", "issued")
    assert result.exit_code == 2
    result = await cli("audit", "list", *as_who(api), "--cursor", "bogus")
    assert result.exit_code == ExitCode.REFUSED and "400" in result.stderr and "cursor" in result.stderr


async def test_audit_show_by_id_and_by_jti(
    kubesim: KubeSim, cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE)
    api: Api = await make_api(store, {CLUSTER: cluster})
    result = await cli("revoke", *as_who(api, "alice"), minted.record.id, "--reason", "rotated")
    assert result.exit_code == 0, result.output
    assert result.stdout.strip() == f"revoked {minted.record.id}"
    assert await call_as_token(kubesim, minted.token) == 401

    result = await cli("audit", "show", *as_who(api), minted.record.id)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith(f"token {minted.record.id}")
    assert "alice (mtls)" in out and "revoked" in out and "rotated" in out
    assert f"{minted.record.bound_secret.namespace}/{minted.record.bound_secret.name}" in out  # type: ignore[union-attr]
    assert re.search(rf"\n  jti: +{minted.record.jti}\n", out), out
    events = [line.split()[1] for line in out.split("\n\n")[1].splitlines()[1:]]
    assert events == ["revoked", "issued"]
    assert minted.token not in out

    # the value a Kubernetes audit event carries, pasted as is
    result = await cli(
        "audit", "show", *as_who(api, "alice"), "--jti", f'"JTI={minted.record.jti}"', "--output", "json"
    )
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["token"]["token_id"] == minted.record.id and len(doc["events"]) == 2

    result = await cli("audit", "show", *as_who(api, "bob"), minted.record.id)
    assert result.exit_code == 1 and "no token" in result.stderr
    result = await cli("audit", "show", *as_who(api))
    assert result.exit_code == 2


async def test_revoke_errors_are_reported(
    cluster: ClusterHandle, store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    minted = await mint(store, cluster, ALICE, bind=False, role="viewer")
    api: Api = await make_api(store, {CLUSTER: cluster})
    result = await cli("revoke", *as_who(api, "bob"), minted.record.id)
    assert result.exit_code == ExitCode.REFUSED and "404" in result.stderr
    result = await cli("revoke", *as_who(api, "alice"), minted.record.id)
    assert (
        result.exit_code == ExitCode.REFUSED and "409" in result.stderr and "not revocable" in result.stderr
    )


async def test_audit_export(store: SqlAuditStore, make_api: Callable[..., Any], tmp_path: Path) -> None:
    now = datetime.now(UTC)
    for i in range(30):
        await record_issued(store, [OPS, ALICE, ALICE_API_KEY][i % 3], began=now - timedelta(seconds=i))
    api: Api = await make_api(store, export_page=7)

    result = await cli("audit", "export", *as_who(api))
    assert result.exit_code == 0, result.output
    lines = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(lines) == 30 and len({line["token_id"] for line in lines}) == 30
    assert "exported 30 records" in result.stderr

    out = tmp_path / "alice.jsonl"
    result = await cli("audit", "export", *as_who(api, "alice-key"), "--out", str(out))
    assert result.exit_code == 0, result.output
    mine = [json.loads(line) for line in out.read_text().splitlines()]
    assert len(mine) == 10 and {(m["caller"]["user"], m["caller"]["method"]) for m in mine} == {
        ("alice", "api-key")
    }

    result = await cli("audit", "export", *as_who(api), "--events", "--caller", "ops", "--limit", "4")
    events = [json.loads(line) for line in result.stdout.splitlines()]
    assert len(events) == 4 and all(e["event"] == "issued" and e["caller"]["user"] == "ops" for e in events)
    assert "stopped at the cap of 4" in result.stderr

    result = await cli("audit", "export", *as_who(api), "--cursor-typo")
    assert result.exit_code == 2
    bare: Api = await make_api(None)
    result = await cli("audit", "export", *as_who(bare))
    assert result.exit_code == ExitCode.UNAVAILABLE
    assert "503" in result.stderr and "audit store not configured" in result.stderr


async def test_decode_with_and_without_verification(
    kubesim: KubeSim, cluster: ClusterHandle, store: SqlAuditStore, tmp_path: Path
) -> None:
    minted = await mint(store, cluster, ALICE)
    result = await cli("decode", minted.token)
    assert result.exit_code == 0, result.output
    out = result.stdout
    assert out.startswith("header:\n  alg:")
    assert re.search(r"\n  sub: +system:serviceaccount:default:deployer\n", out), out
    assert re.search(r"exp: +\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ \(expires in \d+m \d+s\)", out), out
    assert "signature not verified" in out
    assert f"its record: token-broker audit show --jti {minted.record.jti}" in out
    assert minted.token not in out

    assert kubesim.admin_kubeconfig is not None
    result = await cli(
        "decode", "-", "--kubeconfig", str(kubesim.admin_kubeconfig), stdin=f"Bearer {minted.token}\n"
    )
    assert result.exit_code == 0, result.output
    assert f"signature verified with the keys of {kubesim.url}" in result.stdout

    result = await cli("decode", minted.token, "--jwks-url", kubesim.url + "/openid/v1/jwks", "--cacert",
                       str(tmp_path / "kubesim" / "ca.crt"), "--output", "json")  # fmt: skip
    assert result.exit_code == 0, result.output
    doc = json.loads(result.stdout)
    assert doc["claims"]["jti"] == minted.record.jti and doc["header"]["alg"] == "RS256"
    assert doc["verified"] is True and "issuer not checked" in doc["signature"]
    jwks = ["--jwks-url", kubesim.url + "/openid/v1/jwks", "--cacert", str(tmp_path / "kubesim" / "ca.crt")]
    result = await cli("decode", minted.token, *jwks, "--issuer", kubesim.url)
    assert result.exit_code == 0 and f"and issuer {kubesim.url}" in result.stdout
    result = await cli("decode", minted.token, *jwks, "--issuer", "https://elsewhere.example")
    assert result.exit_code == 1 and "signature NOT valid: Invalid issuer" in result.stdout
    # keys that cannot be fetched: said so, exit 1, no traceback
    result = await cli(
        "decode", minted.token, "--jwks-url", kubesim.url + "/openid/v1/jwks", "--timeout", "5"
    )
    assert result.exit_code == 1 and "cannot get the keys" in result.stdout

    # another cluster's token against this cluster's keys
    async with KubeSim(SimOptions(), state_dir=tmp_path / "other") as other:
        assert other.admin_kubeconfig is not None
        async with await Cluster.connect(
            "other", kubeconfig=other.admin_kubeconfig, context=None, in_cluster=False, request_timeout=5
        ) as client:
            await client.accounts.ensure("default", "deployer")
            foreign = (
                await client.tokens.request("default", "deployer", audiences=[], expiration_seconds=600)
            ).token
    result = await cli("decode", foreign, "--kubeconfig", str(kubesim.admin_kubeconfig))
    assert result.exit_code == 1 and "signature NOT valid" in result.stdout

    result = await cli("decode", "not-a-token")
    assert result.exit_code == 1 and "not a JWT" in result.stderr
    result = await cli(
        "decode", minted.token, "--kubeconfig", str(kubesim.admin_kubeconfig), "--jwks-url", "x"
    )
    assert result.exit_code == 2


def test_relative_times_and_tables() -> None:
    now = datetime(2030, 1, 1, tzinfo=UTC)
    assert relative(now + timedelta(minutes=9, seconds=55), now) == "in 9m 55s"
    assert relative(now - timedelta(hours=3, minutes=2), now) == "3h 2m ago"
    assert relative(now + timedelta(days=400), now, future="expires in {}") == "expires in 400d"
    assert table([["a", "bb"], ["ccc", ""]], ["X", "Y"]).splitlines() == ["X    Y", "a    bb", "ccc"]


@pytest.mark.parametrize("args", [["audit", "--help"], ["revoke", "--help"], ["decode", "--help"]])
async def test_commands_are_registered(args: list[str]) -> None:
    result = await cli(*args)
    assert result.exit_code == 0 and "Usage:" in result.output
