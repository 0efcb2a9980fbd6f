"""examples/: the shell the Jenkinsfile and the in-cluster agent run is run here, unchanged, against a broker
deployed the chart's way on the simulator (real curl, jq and kubectl); the GitLab job is checked for its shape (an
OIDC issuer of GitLab's is not at hand here: the OIDC caller tests cover the broker's side)."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml
from chart_flow import WORK, Flow, chart_objects, namespace, run_off_loop, running_flow
from ops_tools import REPO

EXAMPLES = REPO / "examples"
JENKINSFILE = EXAMPLES / "jenkins" / "Jenkinsfile"
AGENT_POD = EXAMPLES / "in-cluster" / "agent-pod.yaml"
GITLAB = EXAMPLES / "gitlab" / ".gitlab-ci.yml"


def shell_tools() -> None:
    for name in ("curl", "jq"):
        if shutil.which(name) is None:
            pytest.skip(f"{name} is not installed (apt-get install -y {name})")


def jenkins_fetch_script() -> str:
    """The body of the first `sh '''...'''` step: the one that fetches the kubeconfig."""
    match = re.search(r"sh '''(.*?)'''", JENKINSFILE.read_text(), re.DOTALL)
    assert match is not None
    return match.group(1)


def agent() -> tuple[dict[str, Any], dict[str, Any]]:
    account, pod = yaml.safe_load_all(AGENT_POD.read_text())
    return account, pod


async def grant_view(flow: Flow, account: str) -> None:
    """What the issued identity may do once it has its token: read the work namespace."""
    await flow.create(
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": f"{account}-view", "namespace": WORK},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "view"},
            "subjects": [{"kind": "ServiceAccount", "name": account, "namespace": WORK}],
        }
    )


@pytest.mark.kubectl
async def test_jenkinsfile_fetch_step_gets_a_kubeconfig_kubectl_uses(tmp_path: Path) -> None:
    shell_tools()
    async with running_flow(tmp_path, chart_objects()) as flow:
        kubeconfig = tmp_path / "workspace" / ".kube" / "token-broker.kubeconfig"
        # what the pipeline's environment block and withCredentials put in the environment
        env = {
            "TOKEN_BROKER_URL": flow.broker_url,
            "BROKER_ROLE": "deployer",
            "TARGET_NAMESPACE": WORK,
            "TOKEN_TTL": "15m",
            "KUBECONFIG": str(kubeconfig),
            "BROKER_CLIENT_CERT": str(tmp_path / "caller.crt"),
            "BROKER_CLIENT_KEY": str(tmp_path / "caller.key"),
            "BROKER_CA": str(tmp_path / "server-ca.crt"),
            "JOB_NAME": 'platform/deploy "staging"',
            "BUILD_URL": "https://jenkins.example.com/job/platform/job/deploy/42/",
        }
        result = await run_off_loop(["/bin/sh", "-c", jenkins_fetch_script()], tmp_path, env)
        assert result.returncode == 0, result.stderr
        assert kubeconfig.stat().st_mode & 0o077 == 0, "umask 077: the kubeconfig is readable by the job only"
        assert await flow.whoami(kubeconfig) == f"system:serviceaccount:{WORK}:deployer"


@pytest.mark.kubectl
async def test_in_cluster_agent_script_trades_its_projected_token(tmp_path: Path) -> None:
    shell_tools()
    account, pod = agent()
    (container,) = pod["spec"]["containers"]
    env = {e["name"]: e["value"] for e in container["env"]}
    async with running_flow(tmp_path, chart_objects()) as flow:
        await flow.create(namespace(account["metadata"]["namespace"]))
        await flow.create(account)
        await grant_view(flow, env["BROKER_ROLE"])
        # what the kubelet's projected volume holds: a token for the pod's account, audience token-broker
        (projected,) = [v for v in pod["spec"]["volumes"] if "projected" in v]
        audience = projected["projected"]["sources"][0]["serviceAccountToken"]["audience"]
        token_file = tmp_path / "projected" / "token"
        token_file.parent.mkdir()
        token_file.write_text(
            await flow.service_account_token(
                account["metadata"]["namespace"], account["metadata"]["name"], [audience]
            )
        )
        env.update(
            TOKEN_BROKER_URL=flow.broker_url,
            TARGET_NAMESPACE=WORK,
            BROKER_TOKEN_FILE=str(token_file),
            BROKER_CA=str(tmp_path / "server-ca.crt"),
            KUBECONFIG=str(tmp_path / "agent.kubeconfig"),
        )
        command = [*container["command"], *container["args"]]
        result = await run_off_loop(command, tmp_path, env)
        assert result.returncode == 0, result.stderr
        assert f"system:serviceaccount:{WORK}:{env['BROKER_ROLE']}" in result.stdout
        assert "No resources found" in result.stderr  # `get pods` ran as the deployer: allowed, and empty


def test_in_cluster_agent_pod_uses_a_projected_token_for_the_broker_only() -> None:
    account, pod = agent()
    assert account["automountServiceAccountToken"] is False
    spec = pod["spec"]
    assert spec["serviceAccountName"] == account["metadata"]["name"]
    assert spec["automountServiceAccountToken"] is False, "the API server's own token is not needed"
    (projected,) = [v for v in spec["volumes"] if "projected" in v]
    token = projected["projected"]["sources"][0]["serviceAccountToken"]
    assert token["audience"] == "token-broker"
    assert token["expirationSeconds"] >= 600  # the TokenRequest minimum
    script = "\n".join(spec["containers"][0]["args"])
    assert 'Authorization: Bearer $(cat "$BROKER_TOKEN_FILE")' in script


def test_gitlab_job_authenticates_with_an_id_token() -> None:
    pipeline = yaml.safe_load(GITLAB.read_text())
    job = pipeline["deploy-staging"]
    assert job["id_tokens"] == {"BROKER_ID_TOKEN": {"aud": "token-broker"}}
    script = "\n".join(job["script"])
    assert "Authorization: Bearer $BROKER_ID_TOKEN" in script
    assert "?format=kubeconfig" in script and "--cacert" in script
    assert any("rm -f" in line for line in job["after_script"])
    # the config snippet in its header names the same audience
    assert 'audience = "token-broker"' in GITLAB.read_text()
