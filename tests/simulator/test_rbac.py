"""RBAC as a fresh cluster has it: bootstrap roles, Role/RoleBinding grants, 403 messages, `kubectl auth can-i`."""

from __future__ import annotations

import base64
import hashlib
import json
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from kubesim_support import admin, call, client, kubeconfig_for
from support.openssl import client_cert
from support.processes import kubectl

from kubesim import KubeSim
from kubesim.context import UserInfo
from kubesim.rbac import Attributes, authorize

pytestmark = pytest.mark.kubectl


async def test_user_without_bindings_is_forbidden_with_the_real_message(kubesim: KubeSim) -> None:
    async with client(kubesim, "mallory", ("team",)) as http:
        code, body, _ = await call(
            http, "POST", "/api/v1/namespaces/default/serviceaccounts/jenkins/token", json={"spec": {}}
        )
        list_code, list_body, _ = await call(http, "GET", "/api/v1/serviceaccounts")
        ns_code, ns_body, _ = await call(http, "GET", "/api/v1/namespaces/default")
    assert code == 403
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": 'serviceaccounts "jenkins" is forbidden: User "mallory" cannot create resource '
        '"serviceaccounts/token" in API group "" in the namespace "default"',
        "reason": "Forbidden",
        "details": {"name": "jenkins", "kind": "serviceaccounts"},
        "code": 403,
    }
    assert list_code == 403
    assert list_body["message"] == (
        'serviceaccounts is forbidden: User "mallory" cannot list resource "serviceaccounts" in API group "" '
        "at the cluster scope"
    )
    assert ns_code == 403
    assert ns_body["message"] == (
        'namespaces "default" is forbidden: User "mallory" cannot get resource "namespaces" in API group "" '
        'in the namespace "default"'
    )


async def test_any_authenticated_user_can_discover_and_ask(kubesim: KubeSim, tmp_path: Path) -> None:
    config = kubeconfig_for(kubesim, tmp_path, "carol", ("devs",))
    resources = await kubectl(config, "api-resources", "-o", "name")
    assert resources.returncode == 0, resources.stderr
    assert "serviceaccounts" in resources.stdout.split()
    whoami = await kubectl(config, "auth", "whoami", "-o", "json")
    # the x509 authenticator names the credential by the certificate's SHA-256, as kube-apiserver 1.34 does
    pem = base64.b64decode(yaml.safe_load(config.read_text())["users"][0]["user"]["client-certificate-data"])
    der = x509.load_pem_x509_certificate(pem).public_bytes(serialization.Encoding.DER)
    fingerprint = hashlib.sha256(der).hexdigest()
    assert json.loads(whoami.stdout)["status"]["userInfo"] == {
        "username": "carol",
        "groups": ["devs", "system:authenticated"],
        "extra": {"authentication.kubernetes.io/credential-id": [f"X509SHA256={fingerprint}"]},
    }
    async with client(kubesim, "carol", ("devs",)) as http:
        code, _, _ = await call(http, "GET", "/version")
        forbidden, body, _ = await call(http, "GET", "/metrics")
    assert code == 200
    assert forbidden == 403
    assert body["message"] == 'forbidden: User "carol" cannot get path "/metrics"'


async def test_can_i_denied_then_allowed_after_a_binding(kubesim: KubeSim, tmp_path: Path) -> None:
    config = kubeconfig_for(kubesim, tmp_path, "dave")
    await admin(kubesim, "create", "ns", "ci")
    # "serviceaccounts/token" would name the object "token"; a subresource is asked with --subresource
    can_i = ("auth", "can-i", "create", "serviceaccounts", "--subresource=token")
    before = await kubectl(config, *can_i, "-n", "ci")
    assert (before.returncode, before.stdout.strip()) == (1, "no")

    role = await admin(
        kubesim,
        "create",
        "role",
        "token-maker",
        "-n",
        "ci",
        "--verb=create",
        "--resource=serviceaccounts/token",
    )
    assert role.returncode == 0, role.stderr
    binding = await admin(
        kubesim, "create", "rolebinding", "dave-tokens", "-n", "ci", "--role=token-maker", "--user=dave"
    )
    assert binding.returncode == 0, binding.stderr

    after = await kubectl(config, *can_i, "-n", "ci")
    assert (after.returncode, after.stdout.strip()) == (0, "yes")
    # a rolebinding grants nothing outside its namespace, and nothing but what the role lists
    elsewhere = await kubectl(config, *can_i, "-n", "default")
    assert elsewhere.stdout.strip() == "no"
    plain = await kubectl(config, "auth", "can-i", "create", "serviceaccounts", "-n", "ci")
    assert plain.stdout.strip() == "no"


async def test_cluster_roles_and_groups(kubesim: KubeSim, tmp_path: Path) -> None:
    config = kubeconfig_for(kubesim, tmp_path, "erin", ("auditors",))
    denied = await kubectl(config, "get", "sa", "-A")
    assert denied.returncode == 1
    assert "cannot list resource" in denied.stderr
    bound = await admin(
        kubesim, "create", "clusterrolebinding", "auditors-view", "--clusterrole=view", "--group=auditors"
    )
    assert bound.returncode == 0, bound.stderr
    allowed = await kubectl(config, "get", "sa", "-A")
    assert allowed.returncode == 0, allowed.stderr
    # view does not include secrets
    secrets = await kubectl(config, "get", "secrets")
    assert secrets.returncode == 1
    assert (
        'User "erin" cannot list resource "secrets" in API group "" in the namespace "default"'
        in secrets.stderr
    )


async def test_service_account_subjects_and_bearer_tokens(kubesim: KubeSim, tmp_path: Path) -> None:
    await admin(kubesim, "create", "sa", "robot")
    token = (await admin(kubesim, "create", "token", "robot")).stdout.strip()
    config = kubesim.write_kubeconfig(tmp_path / "robot.kubeconfig", token=token)
    denied = await kubectl(config, "get", "leases")
    assert 'User "system:serviceaccount:default:robot" cannot list resource "leases"' in denied.stderr
    await admin(
        kubesim, "create", "role", "leases", "--verb=get,list", "--resource=leases.coordination.k8s.io"
    )
    await admin(
        kubesim, "create", "rolebinding", "robot-leases", "--role=leases", "--serviceaccount=default:robot"
    )
    allowed = await kubectl(config, "get", "leases")
    assert allowed.returncode == 0, allowed.stderr


async def test_resource_names_restrict_a_rule(kubesim: KubeSim, tmp_path: Path) -> None:
    config = kubeconfig_for(kubesim, tmp_path, "frank")
    await admin(kubesim, "create", "secret", "generic", "mine", "--from-literal=a=b")
    await admin(kubesim, "create", "secret", "generic", "theirs", "--from-literal=a=b")
    await admin(
        kubesim, "create", "role", "one-secret", "--verb=get", "--resource=secrets", "--resource-name=mine"
    )
    await admin(kubesim, "create", "rolebinding", "frank-one", "--role=one-secret", "--user=frank")
    assert (await kubectl(config, "get", "secret", "mine")).returncode == 0
    assert (await kubectl(config, "get", "secret", "theirs")).returncode == 1


async def test_impersonation_needs_the_impersonate_verb(kubesim: KubeSim, tmp_path: Path) -> None:
    assert kubesim.admin_kubeconfig is not None
    as_bob = await kubectl(
        kubesim.admin_kubeconfig, "auth", "whoami", "--as=bob", "--as-group=g1", "-o", "json"
    )
    assert json.loads(as_bob.stdout)["status"]["userInfo"] == {
        "username": "bob",
        "groups": ["g1", "system:authenticated"],
    }
    config = kubeconfig_for(kubesim, tmp_path, "gina")
    refused = await kubectl(config, "get", "ns", "--as=bob")
    # discovery fails first; kubectl 1.32 then only says "Error from server (Forbidden): unknown", as with a real server
    assert refused.returncode == 1
    assert "Forbidden" in refused.stderr
    async with client(kubesim, "gina", ()) as http:
        code, body, _ = await call(http, "GET", "/api", headers={"Impersonate-User": "bob"})
    assert code == 403
    assert body["message"] == (
        'users "bob" is forbidden: User "gina" cannot impersonate resource "users" in API group "" at the cluster scope'
    )


async def test_always_allow(kubesim_allow: KubeSim, tmp_path: Path) -> None:
    config = kubeconfig_for(kubesim_allow, tmp_path, "nobody")
    result = await kubectl(config, "create", "sa", "anything")
    assert result.returncode == 0, result.stderr
    can = await kubectl(config, "auth", "can-i", "delete", "namespaces")
    assert can.stdout.strip() == "yes"


async def test_rbac_objects_are_validated(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(
            http,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/rolebindings",
            json={
                "metadata": {"name": "x"},
                "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "Thing", "name": "r"},
            },
        )
        role_code, role_body, _ = await call(
            http,
            "POST",
            "/apis/rbac.authorization.k8s.io/v1/namespaces/default/roles",
            json={"metadata": {"name": "r"}, "rules": [{"apiGroups": [""], "resources": ["pods"]}]},
        )
    assert code == 422
    assert body["message"] == (
        'RoleBinding.rbac.authorization.k8s.io "x" is invalid: roleRef.kind: Unsupported value: "Thing": '
        'supported values: "Role", "ClusterRole"'
    )
    assert body["details"]["group"] == "rbac.authorization.k8s.io"
    assert role_code == 422
    assert "rules[0].verbs: Required value: verbs must contain at least one value" in role_body["message"]


async def test_anonymous(kubesim: KubeSim) -> None:
    async with client(kubesim, user=None) as http:
        version, _, _ = await call(http, "GET", "/version")
        health, text, _ = await call(http, "GET", "/healthz")
        code, body, _ = await call(http, "GET", "/api/v1/namespaces")
        bad_token = client(kubesim, user=None, token="not-a-token")
    assert version == 200
    assert (health, text) == (200, "ok")
    assert code == 401
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Failure",
        "message": "Unauthorized",
        "reason": "Unauthorized",
        "code": 401,
    }
    async with bad_token as http:
        code, body, _ = await call(http, "GET", "/version")
    # presented credentials that fail are a 401 even where anonymous would be allowed
    assert code == 401


async def test_a_verified_certificate_wins_over_a_bad_bearer_token(kubesim: KubeSim) -> None:
    async with client(kubesim, "admin", ("system:masters",), token="garbage") as http:
        code, _, _ = await call(http, "GET", "/api/v1/namespaces")
    assert code == 200


def test_rule_matching_unit() -> None:
    from kubesim.rbac_v1 import CLUSTERROLEBINDINGS, CLUSTERROLES, bootstrap
    from kubesim.state import Store

    store = Store()
    bootstrap(store)
    store.create(
        CLUSTERROLES,
        None,
        {
            "metadata": {"name": "sub"},
            "rules": [{"verbs": ["get"], "apiGroups": ["*"], "resources": ["*/status"]}],
        },
    )
    store.create(
        CLUSTERROLEBINDINGS,
        None,
        {
            "metadata": {"name": "sub"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole", "name": "sub"},
            "subjects": [{"kind": "User", "name": "u", "apiGroup": "rbac.authorization.k8s.io"}],
        },
    )
    user = UserInfo("u", groups=["system:authenticated"])
    ok = authorize(store, Attributes(user, "get", True, namespace="x", resource="pods", subresource="status"))
    assert ok.allowed
    assert ok.reason == 'RBAC: allowed by ClusterRoleBinding "sub" of ClusterRole "sub" to User "u"'
    assert not authorize(store, Attributes(user, "get", True, namespace="x", resource="pods")).allowed
    assert authorize(store, Attributes(user, "get", False, path="/apis/foo")).allowed
    assert not authorize(store, Attributes(user, "post", False, path="/apis/foo")).allowed


async def test_openssl_signed_admin_certificate(kubesim: KubeSim, tmp_path: Path) -> None:
    """An administrator made by hand with openssl and the cluster CA's files is cluster-admin."""
    state = kubesim.state_dir
    assert state is not None
    assert (state / "ca.key").stat().st_mode & 0o777 == 0o600
    assert (state / "sa.key").stat().st_mode & 0o777 == 0o600
    subject = "/O=system:masters/CN=ops"
    crt, key = client_cert(tmp_path, state / "ca.crt", state / "ca.key", subject, "ops", key_type="ec")
    ca_data = base64.b64encode((state / "ca.crt").read_bytes()).decode()
    config = tmp_path / "ops.kubeconfig"
    config.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [
                    {"name": "c", "cluster": {"server": kubesim.url, "certificate-authority-data": ca_data}}
                ],
                "users": [{"name": "ops", "user": {"client-certificate": str(crt), "client-key": str(key)}}],
                "contexts": [{"name": "c", "context": {"cluster": "c", "user": "ops"}}],
                "current-context": "c",
            }
        )
    )
    whoami = await kubectl(config, "auth", "whoami", "-o", "json")
    assert json.loads(whoami.stdout)["status"]["userInfo"]["username"] == "ops", whoami.stderr
    assert (await kubectl(config, "delete", "ns", "kube-node-lease")).returncode == 0
