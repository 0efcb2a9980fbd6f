"""The broker's own identity and permissions: what a caller is told when the cluster refuses the broker."""

from __future__ import annotations

from pathlib import Path

import pytest
from kube_support import MakeClient

from broker.domain.errors import BrokerError
from broker.kube import Cluster
from kubesim import KubeSim

RBAC = "/apis/rbac.authorization.k8s.io/v1/namespaces/default"


async def grant(admin: Cluster, user: str, rules: list[dict[str, object]]) -> None:
    await admin.api.post_json(
        f"{RBAC}/roles",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "Role",
            "metadata": {"name": user},
            "rules": rules,
        },
    )
    await admin.api.post_json(
        f"{RBAC}/rolebindings",
        {
            "apiVersion": "rbac.authorization.k8s.io/v1",
            "kind": "RoleBinding",
            "metadata": {"name": user},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Role", "name": user},
            "subjects": [{"apiGroup": "rbac.authorization.k8s.io", "kind": "User", "name": user}],
        },
    )


async def user_client(kubesim: KubeSim, make_client: MakeClient, tmp_path: Path, user: str) -> Cluster:
    cert = kubesim.client_cert(user, [])
    return await make_client(kubesim.write_kubeconfig(tmp_path / f"{user}.kubeconfig", cert=cert))


async def test_missing_token_permission_is_named(
    kubesim: KubeSim, admin: Cluster, make_client: MakeClient, tmp_path: Path
) -> None:
    await grant(
        admin,
        "half-broker",
        [
            {"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get", "create"]},
            {"apiGroups": [""], "resources": ["secrets"], "verbs": ["create", "delete"]},
        ],
    )
    broker = await user_client(kubesim, make_client, tmp_path, "half-broker")
    await broker.accounts.ensure("default", "deployer")
    secret = await broker.secrets.create_binding("default", service_account="deployer")
    with pytest.raises(BrokerError) as info:
        await broker.tokens.request(
            "default", "deployer", audiences=[], expiration_seconds=600, bound_secret=secret
        )
    assert info.value.status == 502
    assert (
        'the broker is not allowed to create resource "serviceaccounts/token" in API group "" '
        'in the namespace "default"' in info.value.detail
    )
    assert info.value.retry_after is None


async def test_missing_create_permission_is_named(
    kubesim: KubeSim, admin: Cluster, make_client: MakeClient, tmp_path: Path
) -> None:
    await grant(admin, "reader", [{"apiGroups": [""], "resources": ["serviceaccounts"], "verbs": ["get"]}])
    broker = await user_client(kubesim, make_client, tmp_path, "reader")
    with pytest.raises(BrokerError) as info:
        await broker.accounts.ensure("default", "deployer")
    assert info.value.status == 502
    assert 'create resource "serviceaccounts" in API group "" in the namespace "default"' in info.value.detail
    # nothing at all: the GET is refused first
    nobody = await user_client(kubesim, make_client, tmp_path, "nobody")
    with pytest.raises(BrokerError) as info:
        await nobody.accounts.ensure("default", "deployer")
    assert 'get resource "serviceaccounts"' in info.value.detail


async def test_rejected_credentials_are_502(
    kubesim: KubeSim, make_client: MakeClient, tmp_path: Path
) -> None:
    client = await make_client(
        kubesim.write_kubeconfig(tmp_path / "bad.kubeconfig", token="not-a-valid-token")
    )
    with pytest.raises(BrokerError) as info:
        await client.accounts.ensure("default", "deployer")
    assert info.value.status == 502
    assert "rejected the broker's own credentials" in info.value.detail
    assert "not-a-valid-token" not in info.value.detail and "not-a-valid-token" not in info.value.reason
