"""examples/ for the OIDC routes and the exec plugin, executed here against the demo stack (the simulator and a
broker) with real curl, jq, kubectl and token-broker:

- github-actions/deploy.yml: its `run:` steps, in order, under bash as GitHub runs them, with the environment a
  runner gives (GITHUB_ENV carried between steps, ACTIONS_ID_TOKEN_REQUEST_URL served by a local OIDC provider
  that signs GitHub-shaped tokens). `uses: actions/checkout` is the prepared workspace; `${{ vars.X }}` is
  resolved from repository variables, and any other expression fails the test.
- jenkins/Jenkinsfile.oidc: its `sh` steps with an ID token shaped like the oidc-provider plugin's.
- exec-plugin/Jenkinsfile: two jobs with their own API keys in one HOME, then one job's clean-up.

What differs from the real systems: the URLs, the CA, the namespace and the names of the issuer's CA file.
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import shutil
import subprocess
import sys
from collections.abc import AsyncIterator, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from oidc_provider import OidcProvider

from broker._kits.pki import CertificateAuthority, write_private
from broker.audit import AuditFilter
from broker.cli.demo_stack import DEMO_NAMESPACE, DemoStack

REPO = Path(__file__).resolve().parents[2]
EXAMPLES = REPO / "examples"
# where pip put token-broker for the interpreter running the tests (not a hard-coded .venv)
VENV_BIN = Path(sys.executable).parent
AUDIENCE = "token-broker"

pytestmark = pytest.mark.kubectl


def tools() -> None:
    for name in ("curl", "jq", "bash"):
        if shutil.which(name) is None:
            pytest.skip(f"{name} is not installed (apt-get install -y {name})")


@dataclass
class Site:
    stack: DemoStack
    provider: OidcProvider
    workspace: Path

    async def issuances(self, caller: str) -> list[Any]:
        assert self.stack.broker is not None and self.stack.broker.store is not None
        return list((await self.stack.broker.store.query_issuances(AuditFilter(caller=caller))).items)


@asynccontextmanager
async def site(tmp_path: Path, config: str) -> AsyncIterator[Site]:
    """An OIDC provider with its own CA, and the demo stack whose config gets `config` (with {issuer} and
    {issuer_ca} filled in). The workspace holds what a checkout would: k8s/ with the app's manifest (a
    ServiceAccount: a kind the simulator serves)."""
    ca = CertificateAuthority.generate("example OIDC provider CA")
    served = ca.issue_server_cert(["127.0.0.1"])
    (tmp_path / "issuer-ca.crt").write_bytes(ca.cert_pem)
    (tmp_path / "issuer.crt").write_bytes(served.cert_pem)
    write_private(tmp_path / "issuer.key", served.key_pem)
    workspace = tmp_path / "workspace"
    (workspace / "k8s").mkdir(parents=True)
    (workspace / "k8s" / "app.yaml").write_text(
        "apiVersion: v1\nkind: ServiceAccount\nmetadata:\n  name: my-app\n"
    )
    async with OidcProvider(tmp_path / "issuer.crt", tmp_path / "issuer.key") as provider:
        extra = config.format(issuer=provider.url, issuer_ca=tmp_path / "issuer-ca.crt")
        stack = DemoStack(tmp_path / "demo", api_port=0, metrics_port=0, sim_port=0, extra_config=extra)
        async with stack:
            yield Site(stack, provider, workspace)


async def run(
    args: list[str], cwd: Path, env: Mapping[str, str], home: Path
) -> subprocess.CompletedProcess[str]:
    full = {"HOME": str(home), "PATH": "/usr/bin:/bin", **env}
    return await asyncio.to_thread(
        subprocess.run, args, cwd=cwd, capture_output=True, text=True, timeout=120, env=full, check=False
    )


# -- GitHub Actions ------------------------------------------------------------------------------------------------

GITHUB_CONFIG = """
[[auth.oidc]]
issuer = "{issuer}"
audience = "token-broker"
ca_file = "{issuer_ca}"
username_prefix = "github:"
groups = ["github-actions"]

[[grants]]
name = "web-staging"
groups = ["github-actions"]
roles = ["deployer"]
namespaces = ["demo"]
claims = {{ repository = "acme/web", environment = "staging" }}
"""

VARIABLE = re.compile(r"\$\{\{\s*vars\.([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")


def resolve(value: str, variables: Mapping[str, str]) -> str:
    resolved = VARIABLE.sub(lambda m: variables[m.group(1)], str(value))
    assert "${{" not in resolved, f"an expression this test cannot evaluate: {value}"
    return resolved


def github_claims(environment: str) -> dict[str, str]:
    return {
        "sub": f"repo:acme/web:environment:{environment}",
        "repository": "acme/web",
        "repository_owner": "acme",
        "ref": "refs/heads/main",
        "environment": environment,
        "event_name": "push",
    }


async def run_workflow(s: Site, tmp_path: Path) -> list[tuple[str, subprocess.CompletedProcess[str]]]:
    """Run the deploy job's steps as a runner would: stop at the first failure, but run `if: always()` ones."""
    workflow = yaml.safe_load((EXAMPLES / "github-actions" / "deploy.yml").read_text())
    assert workflow["permissions"]["id-token"] == "write"
    job = workflow["jobs"]["deploy"]
    variables = {
        "TOKEN_BROKER_URL": s.stack.broker_url,
        "TOKEN_BROKER_CA": s.stack.paths.server_ca.read_text(),
    }
    runner_temp = tmp_path / "runner-temp"
    runner_temp.mkdir()
    github_env = tmp_path / "github-env"
    github_env.touch()
    env = {
        "RUNNER_TEMP": str(runner_temp),
        "GITHUB_ENV": str(github_env),
        "GITHUB_SERVER_URL": "https://github.com",
        "GITHUB_REPOSITORY": "acme/web",
        "GITHUB_RUN_ID": "4242",
        "ACTIONS_ID_TOKEN_REQUEST_URL": f"{s.provider.url}/token?api-version=2.0",
        "ACTIONS_ID_TOKEN_REQUEST_TOKEN": s.provider.request_token,
        # the runner image trusts the issuer's CA; curl here is told with its environment variable
        "CURL_CA_BUNDLE": str(tmp_path / "issuer-ca.crt"),
        **{k: resolve(v, variables) for k, v in job["env"].items()},
        "TARGET_NAMESPACE": DEMO_NAMESPACE,  # the namespace of the demo stack
    }
    results: list[tuple[str, subprocess.CompletedProcess[str]]] = []
    failed = False
    for step in job["steps"]:
        if "uses" in step:
            assert step["uses"].startswith("actions/checkout@"), step
            continue
        if failed and step.get("if") != "always()":
            continue
        step_env = {**env, **{k: resolve(v, variables) for k, v in step.get("env", {}).items()}}
        assert step.get("shell") == "bash"
        result = await run(
            ["bash", "--noprofile", "--norc", "-eo", "pipefail", "-c", step["run"]],
            s.workspace,
            step_env,
            tmp_path,
        )
        results.append((step["name"], result))
        failed = failed or result.returncode != 0
        for line in github_env.read_text().splitlines():
            name, _, value = line.partition("=")
            env[name] = value
    return results


async def test_github_actions_workflow_deploys_with_its_oidc_token(tmp_path: Path) -> None:
    tools()
    async with site(tmp_path, GITHUB_CONFIG) as s:
        s.provider.job_claims = github_claims("staging")
        results = await run_workflow(s, tmp_path)
        assert [name for name, _ in results] == [
            "Kubeconfig from kube-token-broker",
            "Deploy",
            "Forget the kubeconfig",
        ]
        for name, result in results:
            assert result.returncode == 0, f"{name}: {result.stderr}"
        deploy = results[1][1]
        assert f"system:serviceaccount:{DEMO_NAMESPACE}:deployer" in deploy.stdout
        assert "serviceaccount/my-app created" in deploy.stdout
        (record,) = await s.issuances("github:repo:acme/web:environment:staging")
        assert record.context == {"github_run": "https://github.com/acme/web/actions/runs/4242"}
        assert not list((tmp_path / "runner-temp").iterdir())  # the last step left nothing behind


async def test_github_actions_job_outside_the_bound_claims_gets_the_brokers_refusal(tmp_path: Path) -> None:
    tools()
    async with site(tmp_path, GITHUB_CONFIG) as s:
        s.provider.job_claims = github_claims("production")
        results = await run_workflow(s, tmp_path)
        assert [name for name, _ in results] == ["Kubeconfig from kube-token-broker", "Forget the kubeconfig"]
        fetch = results[0][1]
        assert fetch.returncode != 0
        assert '"status": 403' in fetch.stderr.replace('"status":403', '"status": 403')
        assert results[1][1].returncode == 0
        assert not list((tmp_path / "runner-temp").iterdir())


# -- Jenkins, OIDC provider plugin ------------------------------------------------------------------------------

JENKINS_CONFIG = """
[[auth.oidc]]
issuer = "{issuer}"
audience = "token-broker"
ca_file = "{issuer_ca}"
username_prefix = "jenkins:"
groups = ["jenkins"]
max_token_age = "1h"

[[grants]]
name = "jenkins-app-deploys"
groups = ["jenkins"]
roles = ["deployer"]
namespaces = ["demo"]
claims = {{ sub = "{issuer}/job/app/*" }}
"""


def sh_steps(jenkinsfile: Path) -> list[str]:
    """Every `sh '''…'''` and `sh '…'` step, in the order they appear."""
    pattern = re.compile(r"sh '''(.*?)'''|sh '([^'\n]*)'", re.DOTALL)
    return [
        m.group(1) if m.group(1) is not None else m.group(2)
        for m in pattern.finditer(jenkinsfile.read_text())
    ]


def jenkins_environment(jenkinsfile: Path) -> dict[str, str]:
    block = re.search(r"environment \{(.*?)\}", jenkinsfile.read_text(), re.DOTALL)
    assert block is not None
    return dict(re.findall(r"^\s*([A-Z_]+) = '([^']*)'", block.group(1), re.MULTILINE))


async def test_jenkins_oidc_pipeline_deploys_with_its_id_token(tmp_path: Path) -> None:
    tools()
    jenkinsfile = EXAMPLES / "jenkins" / "Jenkinsfile.oidc"
    fetch, deploy, cleanup = sh_steps(jenkinsfile)
    async with site(tmp_path, JENKINS_CONFIG) as s:
        kubeconfig = tmp_path / "workspace@tmp" / "token-broker.kubeconfig"
        env = {
            **jenkins_environment(jenkinsfile),
            "TOKEN_BROKER_URL": s.stack.broker_url,
            "TARGET_NAMESPACE": DEMO_NAMESPACE,
            "KUBECONFIG": str(kubeconfig),
            "BUILD_URL": f"{s.provider.url}/job/app/job/deploy/42/",
            "BROKER_CA": str(s.stack.paths.server_ca),
        }
        job = f"{s.provider.url}/job/app/job/deploy/"
        id_token = s.provider.sign(aud=AUDIENCE, sub=job, build_number=42)
        result = await run(["/bin/sh", "-c", fetch], s.workspace, {**env, "ID_TOKEN": id_token}, tmp_path)
        assert result.returncode == 0, result.stderr
        assert kubeconfig.stat().st_mode & 0o077 == 0
        result = await run(["/bin/sh", "-c", deploy], s.workspace, env, tmp_path)
        assert result.returncode == 0, result.stderr
        assert "serviceaccount/my-app created" in result.stdout
        (record,) = await s.issuances(f"jenkins:{job}")
        assert record.context == {"build_url": env["BUILD_URL"]}
        result = await run(["/bin/sh", "-c", cleanup], s.workspace, env, tmp_path)
        assert result.returncode == 0 and not kubeconfig.exists()

        # a job outside the app/ folder: the broker's refusal is printed, and no kubeconfig is left to use
        other = s.provider.sign(aud=AUDIENCE, sub=f"{s.provider.url}/job/other/job/deploy/")
        result = await run(["/bin/sh", "-c", fetch], s.workspace, {**env, "ID_TOKEN": other}, tmp_path)
        assert result.returncode != 0 and "403" in result.stderr
        assert not kubeconfig.exists() and not Path(f"{kubeconfig}.answer").exists()


# -- exec-plugin kubeconfig on a shared agent ------------------------------------------------------------------------

KEYS = {"job-a": "exec-example-key-a-0123456789", "job-b": "exec-example-key-b-0123456789"}
EXEC_CONFIG = (
    "".join(
        f'\n[[auth.api_keys]]\nname = "{name}"\nsha256 = "{hashlib.sha256(key.encode()).hexdigest()}"\ngroups = ["ci"]\n'
        for name, key in KEYS.items()
    )
    .replace("{", "{{")
    .replace("}", "}}")
)


async def test_exec_plugin_pipeline_on_a_shared_agent(tmp_path: Path) -> None:
    tools()
    jenkinsfile = EXAMPLES / "exec-plugin" / "Jenkinsfile"
    deploy, cleanup = sh_steps(jenkinsfile)
    home = tmp_path / "agent-home"  # one OS user, one HOME for every job
    async with site(tmp_path, EXEC_CONFIG) as s:

        def job_env(name: str) -> dict[str, str]:
            key_file = tmp_path / f"{name}.key"
            key_file.write_text(KEYS[name] + "\n")
            return {
                **jenkins_environment(jenkinsfile),
                "TOKEN_BROKER_URL": s.stack.broker_url,
                "TARGET_NAMESPACE": DEMO_NAMESPACE,
                "KUBE_CONTEXT": "deployer@demo",
                "KUBECONFIG": str(tmp_path / f"{name}@tmp" / "token-broker.kubeconfig"),
                "BROKER_API_KEY_FILE": str(key_file),
                "BROKER_CA": str(s.stack.paths.server_ca),
                # token-broker installed on the agent, in a virtualenv of its own
                "PATH": f"{VENV_BIN}:/usr/bin:/bin",
            }

        a, b = job_env("job-a"), job_env("job-b")
        for env in (a, b):
            result = await run(["/bin/sh", "-c", deploy], s.workspace, env, home)
            assert result.returncode == 0, result.stderr
            assert f"system:serviceaccount:{DEMO_NAMESPACE}:deployer" in result.stdout
            assert "my-app" in result.stdout
        # each job got its own token: the broker saw both, and each has one cache entry
        assert len(await s.issuances("job-a")) == 1 and len(await s.issuances("job-b")) == 1
        cached = home / ".cache" / "token-broker" / "credentials"
        assert len(list(cached.glob("*.json"))) == 2

        result = await run(["/bin/sh", "-c", cleanup], s.workspace, a, home)
        assert result.returncode == 0, result.stderr
        assert "forgot 1 cached credential(s) of this caller" in result.stdout
        assert not Path(a["KUBECONFIG"]).exists()
        assert len(list(cached.glob("*.json"))) == 1  # job-b's stays
