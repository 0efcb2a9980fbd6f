"""The running daemon: SIGHUP-style reload, TLS file rotation, `serve` and `config check` from the CLI."""

from __future__ import annotations

import asyncio
import os
import signal
import ssl
from pathlib import Path

import aiohttp
import pytest
from e2e_support import mtls_context, post_token, serve, stack_at
from support.processes import TOKEN_BROKER, run

from broker._kits.pki import CertificateAuthority, write_private


@pytest.fixture
async def stack(tmp_path: Path):
    async with stack_at(tmp_path / "demo") as running:
        yield running


async def test_reload_swaps_grants_and_keeps_the_old_config_when_the_new_one_is_bad(stack) -> None:
    assert stack.broker is not None
    alice = stack.make_caller("alice", ["operators"])
    jenkins = stack.paths.caller_cert("jenkins")
    cfg = stack.paths.config
    original = cfg.read_text()

    # operators may use every role; take that grant away
    cfg.write_text(original.replace('groups = ["operators"]', 'groups = ["nobody"]'))
    assert stack.broker.reload()
    status, _, _ = await post_token(stack, mtls_context(stack, *alice), {"role": "reader"})
    assert status == 403

    # a broken file is refused and the running config stays
    cfg.write_text(original.replace("[[grants]]", "[[grants]\n"))
    assert not stack.broker.reload()
    status, _, text = await post_token(stack, mtls_context(stack, *jenkins), {"role": "reader"})
    assert status == 201, text


async def test_rotated_tls_certificate_is_served_without_restart(stack) -> None:
    assert stack.broker is not None and stack.broker.tls is not None
    p = stack.paths
    new_ca = CertificateAuthority.generate("rotated server CA")
    serving = new_ca.issue_server_cert(["127.0.0.1", "localhost"])
    p.server_cert.write_bytes(serving.cert_pem)
    write_private(p.server_key, serving.key_pem)
    os.utime(p.server_cert, (1, 1))  # make the change visible even within the same mtime tick
    assert stack.broker.tls.check()

    jenkins = p.caller_cert("jenkins")
    old_trust = mtls_context(stack, *jenkins)
    with pytest.raises(aiohttp.ClientConnectorCertificateError):
        await post_token(stack, old_trust, {"role": "reader"})
    new_trust = ssl.create_default_context(cadata=new_ca.cert_pem.decode())
    new_trust.load_cert_chain(str(jenkins[0]), str(jenkins[1]))
    status, _, text = await post_token(stack, new_trust, {"role": "reader"})
    assert status == 201, text


def test_config_check_names_file_and_key(tmp_path: Path) -> None:
    bad = tmp_path / "bad.toml"
    bad.write_text(
        '[server]\ntls_cert = "a"\ntls_key = "b"\n[[clusters]]\nname = "x"\nin_cluster = true\n'
        '[[roles]]\nname = "r"\nservice_account = "s"\nnamespaces = ["d"]\nmax_ttl = "nope"\n'
    )
    result = run([TOKEN_BROKER, "config", "check", str(bad)], home=tmp_path)
    assert result.returncode == 2
    assert "Traceback" not in result.stderr
    assert str(bad) in result.stderr
    assert "roles[0].max_ttl" in result.stderr


async def test_serve_runs_until_sigterm(stack, tmp_path: Path) -> None:
    # a second broker process on the demo's config (its own ports), driven like an operator would
    cfg = tmp_path / "serve.toml"
    cfg.write_text(
        stack.paths.config.read_text()
        .replace(stack.broker.config.server.listen, "127.0.0.1:0")  # type: ignore[union-attr]
        .replace(stack.broker.config.server.metrics_listen, "127.0.0.1:0")  # type: ignore[union-attr]
    )
    proc, api = await serve(cfg, tmp_path)
    try:
        assert api.startswith("https://127.0.0.1:")
    finally:
        proc.send_signal(signal.SIGTERM)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
