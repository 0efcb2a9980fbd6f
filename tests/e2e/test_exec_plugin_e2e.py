"""The kubectl exec plugin as CI agents use it, with the real kubectl: many callers in one HOME never share a
token; after a revocation kubectl gets a fresh token (or the broker's refusal) without anyone touching files;
`token-broker logout`; a kubeconfig that runs the plugin by its absolute path."""

from __future__ import annotations

import hashlib
import json
import stat
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from backends import kubectl_binary
from e2e_support import stack_at
from support import processes

from broker.audit import AuditFilter
from broker.cli.demo_stack import DEMO_NAMESPACE, DemoStack
from broker.cli.exit_codes import ExitCode

KEY_A, KEY_B = "job-a-key-0123456789abcdef", "job-b-key-0123456789abcdef"
API_KEYS = f"""
[[auth.api_keys]]
name = "job-a"
sha256 = "{hashlib.sha256(KEY_A.encode()).hexdigest()}"
groups = ["ci"]

[[auth.api_keys]]
name = "job-b"
sha256 = "{hashlib.sha256(KEY_B.encode()).hexdigest()}"
groups = ["no-grant"]
"""

pytestmark = pytest.mark.kubectl


@pytest.fixture
async def stack(tmp_path: Path):
    async with stack_at(tmp_path / "demo", extra_config=API_KEYS) as running:
        yield running


def key_file(tmp_path: Path, name: str, value: str) -> Path:
    path = tmp_path / "secrets" / name
    path.parent.mkdir(exist_ok=True)
    path.write_text(value + "\n")
    return path


def _path(path: str | None) -> dict[str, str]:
    return {"PATH": path} if path is not None else {}


async def token_broker(home: Path, *args: str, path: str | None = None) -> subprocess.CompletedProcess[str]:
    return await processes.token_broker(*args, home=home, **_path(path))


async def kubectl(
    home: Path, kubeconfig: Path, *args: str, path: str | None = None
) -> subprocess.CompletedProcess[str]:
    binary = kubectl_binary(real=False)
    return await processes.kubectl(kubeconfig, *args, home=home, binary=binary, **_path(path))


def endpoint(stack: DemoStack) -> list[str]:
    return ["--broker", stack.broker_url, "--cacert", str(stack.paths.server_ca)]


async def exec_kubeconfig(stack: DemoStack, home: Path, *credential: str) -> Path:
    out = home / "exec.kubeconfig"
    made = await token_broker(home, "kubeconfig", *endpoint(stack), *credential, "--out", str(out))
    assert made.returncode == 0, made.stderr
    return out


async def whoami(home: Path, kubeconfig: Path) -> subprocess.CompletedProcess[str]:
    return await kubectl(home, kubeconfig, "--context", "deployer@demo", "auth", "whoami", "-o", "json")


def jti_of(result: subprocess.CompletedProcess[str]) -> str:
    assert result.returncode == 0, result.stderr
    extra = json.loads(result.stdout)["status"]["userInfo"]["extra"]
    return str(extra["authentication.kubernetes.io/credential-id"][0]).removeprefix("JTI=")


async def issuances(stack: DemoStack, caller: str) -> list[Any]:
    assert stack.broker is not None and stack.broker.store is not None
    return list((await stack.broker.store.query_issuances(AuditFilter(caller=caller))).items)


def cache_files(home: Path) -> list[Path]:
    return sorted((home / ".cache" / "token-broker" / "credentials").glob("*.json"))


async def test_two_api_key_callers_in_one_home_never_share_a_token(stack: DemoStack, tmp_path: Path) -> None:
    home = tmp_path / "agent-home"  # one OS user, one HOME, two jobs
    a, b = key_file(tmp_path, "a", KEY_A), key_file(tmp_path, "b", KEY_B)
    plugin = ["credential", *endpoint(stack), "--role", "deployer", "--namespace", DEMO_NAMESPACE]

    alone = await token_broker(home, *plugin, "--api-key-file", str(b))
    assert alone.returncode == ExitCode.REFUSED and alone.stdout == ""
    refusal = alone.stderr
    assert refusal.startswith("token-broker: 403 Forbidden")

    first = await token_broker(home, *plugin, "--api-key-file", str(a))
    assert first.returncode == 0, first.stderr
    token_a = json.loads(first.stdout)["status"]["token"]

    after = await token_broker(home, *plugin, "--api-key-file", str(b))
    assert after.returncode == ExitCode.REFUSED and after.stdout == ""
    assert after.stderr == refusal and token_a not in after.stderr

    # the broker saw job-b both times, and the audit trail names it; job-a got one token
    assert stack.broker is not None and stack.broker.store is not None
    denials = (await stack.broker.store.query_events(AuditFilter(event="denied", caller="job-b"))).items
    assert len(denials) == 2
    assert len(await issuances(stack, "job-a")) == 1

    # one private entry, and the token is not in it in the clear
    (entry,) = cache_files(home)
    assert token_a not in entry.read_text() and token_a.split(".")[1] not in entry.read_text()
    assert stat.S_IMODE(entry.stat().st_mode) == 0o600
    for directory in (entry.parent, entry.parent.parent):
        assert stat.S_IMODE(directory.stat().st_mode) == 0o700

    again = await token_broker(home, *plugin, "--api-key-file", str(a))
    assert json.loads(again.stdout)["status"]["token"] == token_a  # job-a's own cache still works


async def test_two_certificate_callers_in_one_home(stack: DemoStack, tmp_path: Path) -> None:
    home = tmp_path / "agent-home"
    jenkins = stack.paths.caller_cert("jenkins")
    intruder = stack.make_caller("intruder", ["no-grant"])
    plugin = ["credential", *endpoint(stack), "--role", "deployer", "--namespace", DEMO_NAMESPACE]
    ok = await token_broker(home, *plugin, "--cert", str(jenkins[0]), "--key", str(jenkins[1]))
    assert ok.returncode == 0, ok.stderr
    refused = await token_broker(home, *plugin, "--cert", str(intruder[0]), "--key", str(intruder[1]))
    assert refused.returncode == ExitCode.REFUSED and refused.stdout == ""


async def test_the_next_kubectl_command_after_revoke_gets_a_fresh_token(
    stack: DemoStack, tmp_path: Path
) -> None:
    home = tmp_path / "laptop"
    cert, key = stack.paths.caller_cert("jenkins")
    kubeconfig = await exec_kubeconfig(stack, home, "--cert", str(cert), "--key", str(key))
    first = jti_of(await whoami(home, kubeconfig))
    (record,) = await issuances(stack, "jenkins")
    assert record.jti == first

    revoked = await token_broker(
        home, "revoke", *endpoint(stack), "--cert", str(cert), "--key", str(key), record.id
    )
    assert revoked.returncode == 0, revoked.stderr
    assert "forgot the credential the kubectl plugin cached for it" in revoked.stderr

    second = jti_of(await whoami(home, kubeconfig))
    assert second != first
    assert len(await issuances(stack, "jenkins")) == 2


async def test_revoked_elsewhere_kubectl_recovers_by_itself(stack: DemoStack, tmp_path: Path) -> None:
    home = tmp_path / "agent-home"
    cert, key = stack.paths.caller_cert("jenkins")
    kubeconfig = await exec_kubeconfig(stack, home, "--cert", str(cert), "--key", str(key))
    first = jti_of(await whoami(home, kubeconfig))
    (record,) = await issuances(stack, "jenkins")
    # an operator on another machine (another HOME): this agent's cache still holds the dead token
    revoked = await token_broker(
        tmp_path / "operator", "revoke", *endpoint(stack), "--cert", str(cert), "--key", str(key), record.id
    )
    assert revoked.returncode == 0, revoked.stderr

    failed = await whoami(home, kubeconfig)
    # kubectl got 401 with the cached token and ran the plugin again at once: that run fetched a fresh one
    assert failed.returncode != 0 and "Unauthorized" in failed.stderr
    assert len(await issuances(stack, "jenkins")) == 2
    second = jti_of(await whoami(home, kubeconfig))
    assert second != first
    # no issuance per kubectl retry: one fresh token in all
    assert len(await issuances(stack, "jenkins")) == 2


async def test_after_revocation_a_caller_no_longer_granted_sees_the_brokers_refusal(
    stack: DemoStack, tmp_path: Path
) -> None:
    home = tmp_path / "agent-home"
    cert, key = stack.paths.caller_cert("jenkins")
    kubeconfig = await exec_kubeconfig(stack, home, "--cert", str(cert), "--key", str(key))
    jti_of(await whoami(home, kubeconfig))
    (record,) = await issuances(stack, "jenkins")
    # the grant goes (a SIGHUP-style reload), and the token is revoked by an operator elsewhere
    config = stack.paths.config
    config.write_text(config.read_text().replace('groups = ["ci"]', 'groups = ["ci-retired"]'))
    assert stack.broker is not None and stack.broker.reload()
    revoked = await token_broker(
        tmp_path / "operator", "revoke", *endpoint(stack), "--cert", str(cert), "--key", str(key), record.id
    )
    assert revoked.returncode == 0, revoked.stderr

    refusal = 'token-broker: 403 Forbidden: not allowed to use role "deployer"'
    for _ in range(2):  # the command that met the 401, and every one after it
        result = await whoami(home, kubeconfig)
        assert result.returncode != 0
        assert refusal in result.stderr and "Traceback" not in result.stderr
    assert cache_files(home) == []


async def test_logout_forgets_one_role_or_everything(stack: DemoStack, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    cert, key = stack.paths.caller_cert("jenkins")
    kubeconfig = await exec_kubeconfig(stack, home, "--cert", str(cert), "--key", str(key))
    for context in ("deployer@demo", "reader@demo"):
        result = await kubectl(home, kubeconfig, "--context", context, "auth", "whoami")
        assert result.returncode == 0, result.stderr
    assert len(cache_files(home)) == 2

    out = await token_broker(home, "logout", "--broker", stack.broker_url, "--role", "reader")
    assert out.returncode == 0 and out.stdout.startswith("forgot 1 cached credential(s) of broker")
    assert len(cache_files(home)) == 1
    out = await token_broker(home, "logout")
    assert out.returncode == 0 and out.stdout.startswith("forgot 1 cached credential(s) in ")
    assert cache_files(home) == []
    # and kubectl simply fetches again
    result = await kubectl(home, kubeconfig, "--context", "reader@demo", "auth", "whoami")
    assert result.returncode == 0, result.stderr


async def test_kubeconfig_runs_the_plugin_by_its_absolute_path(stack: DemoStack, tmp_path: Path) -> None:
    home = tmp_path / "laptop"
    a = key_file(tmp_path, "a", KEY_A)
    bare_path = "/usr/bin:/bin"  # the virtualenv is not on kubectl's PATH, as after `pip install` into one
    out = home / "exec.kubeconfig"
    made = await token_broker(
        home, "kubeconfig", *endpoint(stack), "--api-key-file", str(a), "--out", str(out), path=bare_path
    )
    assert made.returncode == 0, made.stderr
    plugin = processes.TOKEN_BROKER
    assert f"the contexts run {plugin} (this token-broker; change it with --command)" in made.stderr
    users = yaml.safe_load(out.read_text())["users"]
    assert {u["user"]["exec"]["command"] for u in users} == {plugin}
    assert all(str(a.resolve()) in u["user"]["exec"]["args"] for u in users)  # the key file, never the key
    assert KEY_A not in out.read_text()
    result = await kubectl(home, out, "--context", "deployer@demo", "auth", "whoami", path=bare_path)
    assert result.returncode == 0, result.stderr

    made = await token_broker(
        home,
        "kubeconfig",
        *endpoint(stack),
        "--api-key-file",
        str(a),
        "--command",
        "token-broker",
        path=bare_path,
    )
    assert made.returncode == 0, made.stderr
    assert "the contexts run token-broker (as given by --command)" in made.stderr
    assert {u["user"]["exec"]["command"] for u in yaml.safe_load(made.stdout)["users"]} == {"token-broker"}
