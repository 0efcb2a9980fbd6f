"""Service-account tokens through the real kubectl: create token, whoami, revocation, RBAC, rotation."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from kubesim_support import admin
from support.processes import kubectl

from kubesim import KubeSim, SimOptions

pytestmark = pytest.mark.kubectl


async def ok(sim: KubeSim, *args: str) -> str:
    result = await admin(sim, *args)
    assert result.returncode == 0, result.stderr
    return result.stdout


async def whoami(sim: KubeSim, tmp_path: Path, token: str, name: str = "token") -> tuple[int, str, str]:
    config = sim.write_kubeconfig(tmp_path / f"{name}.kubeconfig", token=token)
    result = await kubectl(config, "auth", "whoami")
    return result.returncode, result.stdout, result.stderr


def username_of(whoami_output: str) -> str:
    # kubectl auth whoami prints a table: ATTRIBUTE / VALUE, then "Username   <name>"
    for line in whoami_output.splitlines():
        if line.startswith("Username"):
            return line.split()[1]
    raise AssertionError(f"no Username row in {whoami_output!r}")


@pytest.fixture
async def capped(tmp_path: Path) -> AsyncIterator[KubeSim]:
    async with KubeSim(SimOptions(max_token_expiration=7200), state_dir=tmp_path / "capped") as sim:
        yield sim


async def test_create_token_and_whoami(kubesim: KubeSim, tmp_path: Path) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    token = (await ok(kubesim, "create", "token", "jenkins", "--duration", "10m")).strip()
    code, out, err = await whoami(kubesim, tmp_path, token)
    assert code == 0, err
    assert username_of(out) == "system:serviceaccount:default:jenkins"
    assert "[system:serviceaccounts system:serviceaccounts:default system:authenticated]" in out
    assert "authentication.kubernetes.io/credential-id" in out


async def test_a_too_short_duration_is_refused(kubesim: KubeSim) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    result = await admin(kubesim, "create", "token", "jenkins", "--duration", "1m")
    assert result.returncode != 0
    assert (
        "spec.expirationSeconds: Invalid value: 60: may not specify a duration less than 10 minutes"
        in result.stderr
    )


async def test_a_capped_duration_warns(capped: KubeSim) -> None:
    await ok(capped, "create", "serviceaccount", "jenkins")
    result = await admin(capped, "create", "token", "jenkins", "--duration", "10h")
    assert result.returncode == 0
    assert "Warning: requested expiration of 36000 seconds shortened to 7200 seconds" in result.stderr


async def test_deleting_the_bound_secret_makes_the_token_unauthorized(
    kubesim: KubeSim, tmp_path: Path
) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    await ok(kubesim, "create", "secret", "generic", "s1")
    token = (
        await ok(
            kubesim,
            "create",
            "token",
            "jenkins",
            "--bound-object-kind",
            "Secret",
            "--bound-object-name",
            "s1",
        )
    ).strip()
    code, _out, err = await whoami(kubesim, tmp_path, token)
    assert code == 0, err
    await ok(kubesim, "delete", "secret", "s1")
    code, _out, err = await whoami(kubesim, tmp_path, token)
    assert code != 0
    assert "Unauthorized" in err


async def test_a_token_bound_to_a_missing_secret_is_not_issued(kubesim: KubeSim) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    result = await admin(
        kubesim, "create", "token", "jenkins", "--bound-object-kind", "Secret", "--bound-object-name", "nope"
    )
    assert result.returncode != 0
    assert 'secrets "nope" not found' in result.stderr


async def test_a_service_account_without_bindings_is_forbidden(kubesim: KubeSim, tmp_path: Path) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    token = (await ok(kubesim, "create", "token", "jenkins")).strip()
    config = kubesim.write_kubeconfig(tmp_path / "jenkins.kubeconfig", token=token)
    result = await kubectl(config, "get", "secrets")
    assert result.returncode != 0
    assert result.stderr.strip() == (
        'Error from server (Forbidden): secrets is forbidden: User "system:serviceaccount:default:jenkins" '
        'cannot list resource "secrets" in API group "" in the namespace "default"'
    )
    # once bound, the same token is allowed
    await ok(
        kubesim,
        "create",
        "rolebinding",
        "jenkins-view",
        "--clusterrole",
        "view",
        "--serviceaccount",
        "default:jenkins",
    )
    result = await kubectl(config, "get", "serviceaccounts", "-o", "name")
    assert result.returncode == 0, result.stderr
    assert "serviceaccount/jenkins" in result.stdout


async def test_deleting_the_service_account_invalidates_its_tokens(kubesim: KubeSim, tmp_path: Path) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    token = (await ok(kubesim, "create", "token", "jenkins")).strip()
    assert (await whoami(kubesim, tmp_path, token))[0] == 0
    await ok(kubesim, "delete", "serviceaccount", "jenkins")
    await ok(kubesim, "create", "serviceaccount", "jenkins")  # same name, new uid
    code, _out, err = await whoami(kubesim, tmp_path, token)
    assert code != 0 and "Unauthorized" in err


async def test_rotation_keeps_old_tokens_valid_until_the_key_is_dropped(
    kubesim: KubeSim, tmp_path: Path
) -> None:
    await ok(kubesim, "create", "serviceaccount", "jenkins")
    old = (await ok(kubesim, "create", "token", "jenkins")).strip()
    old_kid = kubesim.ctx.keys.active_kid
    kubesim.ctx.rotate_signing_key()
    new = (await ok(kubesim, "create", "token", "jenkins")).strip()
    assert (await whoami(kubesim, tmp_path, old, "old"))[0] == 0
    assert (await whoami(kubesim, tmp_path, new, "new"))[0] == 0
    kubesim.ctx.drop_signing_key(old_kid)
    code, _out, err = await whoami(kubesim, tmp_path, old, "old")
    assert code != 0 and "Unauthorized" in err
    assert (await whoami(kubesim, tmp_path, new, "new"))[0] == 0
