"""`config check` loads every file the config names as `serve` does and reports `file: key.path: problem`;
`serve` reports the same lines instead of failing later with a bare errno."""

from __future__ import annotations

from pathlib import Path

import pytest
from cli_support import Pki
from support.processes import token_broker

from broker import render
from broker.cli.exit_codes import ExitCode


def write_config(tmp_path: Path, pki: Pki, **replace: str) -> Path:
    kubeconfig = tmp_path / "broker.kubeconfig"
    kubeconfig.write_text(
        render.kubeconfig("dev", "https://10.0.0.1:6443", pki.ca.cert_pem, "broker", "a.b.c", None)
    )
    (tmp_path / "audit").mkdir(exist_ok=True)
    values = {
        "tls_cert": str(pki.path("server.crt")),
        "tls_key": str(pki.path("server.key")),
        "client_ca": str(pki.path("ca.crt")),
        "kubeconfig": str(kubeconfig),
        "cluster_ca": str(pki.path("ca.crt")),
        "oidc_ca": str(pki.path("ca.crt")),
        "sqlite": str(tmp_path / "audit" / "audit.sqlite3"),
        **replace,
    }
    config = tmp_path / "broker.toml"
    config.write_text(
        f"""
[server]
tls_cert = "{values["tls_cert"]}"
tls_key = "{values["tls_key"]}"
client_ca = "{values["client_ca"]}"

[[clusters]]
name = "dev"
kubeconfig = "{values["kubeconfig"]}"
ca_file = "{values["cluster_ca"]}"

[[roles]]
name = "deployer"
service_account = "deployer"
namespaces = ["ci"]

[[auth.oidc]]
issuer = "https://gitlab.example.com"
audience = "token-broker"
ca_file = "{values["oidc_ca"]}"

[audit]
sqlite_path = "{values["sqlite"]}"
"""
    )
    return config


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


async def check(config: Path, home: Path) -> tuple[int, list[str]]:
    result = await token_broker("config", "check", str(config), home=home)
    assert "Traceback" not in result.stderr
    return result.returncode, result.stderr.splitlines()


async def test_a_config_whose_files_all_load_is_ok(tmp_path: Path, pki: Pki) -> None:
    config = write_config(tmp_path, pki)
    result = await token_broker("config", "check", str(config), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith(f"{config}: OK") and "every file it names loads" in result.stdout


async def test_each_file_problem_is_named_with_its_key(tmp_path: Path, pki: Pki) -> None:
    bare = tmp_path / "bare.kubeconfig"
    bare.write_text("apiVersion: v1\nkind: Config\nclusters: []\n")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("not a certificate\n")
    other = Pki(tmp_path / "other")
    config = write_config(
        tmp_path,
        pki,
        tls_cert=str(tmp_path / "missing.crt"),
        kubeconfig=str(bare),
        cluster_ca=str(garbage),
        oidc_ca=str(tmp_path / "missing-ca.crt"),
        sqlite=str(tmp_path / "no-such-dir" / "audit.sqlite3"),
    )
    code, lines = await check(config, tmp_path)
    assert code == ExitCode.USAGE
    assert lines == [
        f"{config}: server.tls_cert: certificate {tmp_path / 'missing.crt'}: No such file or directory",
        f"{config}: clusters[0].kubeconfig: cannot load kubeconfig {bare}: Invalid kube-config file. "
        f"Expected key current-context in {bare}",
        f"{config}: clusters[0].ca_file: CA bundle {garbage}: no PEM certificate in it",
        f"{config}: auth.oidc[0].ca_file: cannot load the OIDC issuer CA bundle {tmp_path / 'missing-ca.crt'}: "
        "No such file or directory",
        f"{config}: audit.sqlite_path: {tmp_path / 'no-such-dir' / 'audit.sqlite3'}: directory "
        f"{tmp_path / 'no-such-dir'} does not exist",
    ]

    # a key that is not the certificate's; a kubeconfig that is not there
    config = write_config(
        tmp_path, pki, tls_key=str(other.path("server.key")), kubeconfig=str(tmp_path / "nope.kubeconfig")
    )
    code, lines = await check(config, tmp_path)
    assert code == ExitCode.USAGE
    assert lines == [
        f"{config}: server.tls_key: {other.path('server.key')} with {pki.path('server.crt')}: key values mismatch",
        f"{config}: clusters[0].kubeconfig: cannot load kubeconfig {tmp_path / 'nope.kubeconfig'}: "
        "No such file or directory",
    ]

    # --syntax-only: the file alone, for checking it away from where it runs
    result = await token_broker("config", "check", "--syntax-only", str(config), home=tmp_path)
    assert result.returncode == 0 and "every file" not in result.stdout


async def test_serve_reports_the_same_lines(tmp_path: Path, pki: Pki) -> None:
    config = write_config(tmp_path, pki, tls_cert=str(tmp_path / "missing.crt"))
    result = await token_broker("serve", "--config", str(config), "--log-format", "text", home=tmp_path)
    assert result.returncode == ExitCode.USAGE
    assert "Traceback" not in result.stderr
    assert (
        f"{config}: server.tls_cert: certificate {tmp_path / 'missing.crt'}: No such file or directory"
        in (result.stderr.splitlines())
    )
