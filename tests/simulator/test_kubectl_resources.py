"""The real kubectl against the simulator: everyday commands on namespaces, service accounts, secrets, leases."""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kubesim_support import admin

from kubesim import KubeSim

pytestmark = pytest.mark.kubectl


async def test_namespace_lifecycle(kubesim: KubeSim) -> None:
    created = await admin(kubesim, "create", "namespace", "team-a")
    assert created.returncode == 0, created.stderr
    assert created.stdout.strip() == "namespace/team-a created"

    got = await admin(kubesim, "get", "ns", "team-a", "-o", "yaml")
    ns = yaml.safe_load(got.stdout)
    assert ns["kind"] == "Namespace"
    assert ns["status"]["phase"] == "Active"
    assert ns["metadata"]["labels"]["kubernetes.io/metadata.name"] == "team-a"

    assert (
        await admin(kubesim, "label", "ns", "team-a", "tier=ci")
    ).stdout.strip() == "namespace/team-a labeled"
    assert (await admin(kubesim, "annotate", "ns", "team-a", "owner=ops")).returncode == 0
    listed = await admin(kubesim, "get", "ns", "-l", "tier=ci", "-o", "name")
    assert listed.stdout.split() == ["namespace/team-a"]

    table = await admin(kubesim, "get", "ns")
    assert table.stdout.splitlines()[0].split() == ["NAME", "STATUS", "AGE"]
    assert "team-a" in table.stdout

    deleted = await admin(kubesim, "delete", "ns", "team-a")
    assert deleted.stdout.strip() == 'namespace "team-a" deleted'
    gone = await admin(kubesim, "get", "ns", "team-a")
    assert gone.returncode == 1
    assert 'namespaces "team-a" not found' in gone.stderr


async def test_deleting_a_namespace_deletes_its_objects(kubesim: KubeSim) -> None:
    await admin(kubesim, "create", "ns", "doomed")
    await admin(kubesim, "create", "sa", "robot", "-n", "doomed")
    await admin(kubesim, "delete", "ns", "doomed")
    await admin(kubesim, "create", "ns", "doomed")
    listed = await admin(kubesim, "get", "sa", "robot", "-n", "doomed")
    assert listed.returncode == 1
    assert 'serviceaccounts "robot" not found' in listed.stderr


async def test_the_default_namespace_cannot_be_deleted(kubesim: KubeSim) -> None:
    result = await admin(kubesim, "delete", "ns", "default")
    assert result.returncode == 1
    assert 'namespaces "default" is forbidden: this namespace may not be deleted' in result.stderr


async def test_serviceaccount_lifecycle(kubesim: KubeSim) -> None:
    await admin(kubesim, "create", "ns", "ci")
    created = await admin(kubesim, "create", "serviceaccount", "jenkins", "-n", "ci")
    assert created.stdout.strip() == "serviceaccount/jenkins created", created.stderr

    sa = yaml.safe_load((await admin(kubesim, "get", "sa", "jenkins", "-n", "ci", "-o", "yaml")).stdout)
    assert sa["metadata"]["namespace"] == "ci"
    assert sa["metadata"]["uid"]
    assert int(sa["metadata"]["resourceVersion"]) > 0

    await admin(kubesim, "label", "sa", "jenkins", "-n", "ci", "app=ci")
    await admin(kubesim, "annotate", "sa", "jenkins", "-n", "ci", "note=hi")
    sa = yaml.safe_load((await admin(kubesim, "get", "sa", "jenkins", "-n", "ci", "-o", "yaml")).stdout)
    assert sa["metadata"]["labels"] == {"app": "ci"}
    assert sa["metadata"]["annotations"] == {"note": "hi"}

    table = await admin(kubesim, "get", "sa", "-n", "ci")
    assert table.stdout.splitlines()[0].split() == ["NAME", "SECRETS", "AGE"]
    # the serviceaccounts controller made "default" in the new namespace
    assert {line.split()[0] for line in table.stdout.splitlines()[1:]} == {"default", "jenkins"}

    deleted = await admin(kubesim, "delete", "sa", "jenkins", "-n", "ci")
    assert deleted.stdout.strip() == 'serviceaccount "jenkins" deleted'


async def test_list_with_label_selector_across_namespaces(kubesim: KubeSim) -> None:
    for ns in ("a", "b"):
        await admin(kubesim, "create", "ns", ns)
        await admin(kubesim, "create", "sa", "bot", "-n", ns)
        await admin(kubesim, "label", "sa", "bot", "-n", ns, f"team={ns}")
    result = await admin(kubesim, "get", "sa", "-A", "-l", "team in (a,b)", "-o", "json")
    items = json.loads(result.stdout)["items"]
    assert [(i["metadata"]["namespace"], i["metadata"]["name"]) for i in items] == [
        ("a", "bot"),
        ("b", "bot"),
    ]
    only_b = await admin(kubesim, "get", "sa", "-A", "-l", "team!=a,team", "-o", "name")
    assert only_b.stdout.split() == ["serviceaccount/bot"]


async def test_create_secret_generic(kubesim: KubeSim) -> None:
    created = await admin(
        kubesim, "create", "secret", "generic", "db", "--from-literal=user=admin", "--from-literal=pw=s3cret"
    )
    assert created.stdout.strip() == "secret/db created", created.stderr
    secret = json.loads((await admin(kubesim, "get", "secret", "db", "-o", "json")).stdout)
    assert secret["type"] == "Opaque"
    assert base64.b64decode(secret["data"]["pw"]) == b"s3cret"
    table = await admin(kubesim, "get", "secrets")
    assert table.stdout.splitlines()[0].split() == ["NAME", "TYPE", "DATA", "AGE"]
    assert table.stdout.splitlines()[1].split()[:3] == ["db", "Opaque", "2"]


async def test_string_data_is_merged_into_data(kubesim: KubeSim, tmp_path: Path) -> None:
    manifest = tmp_path / "secret.yaml"
    manifest.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Secret",
                "metadata": {"name": "mixed"},
                "data": {
                    "a": base64.b64encode(b"from-data").decode(),
                    "b": base64.b64encode(b"old").decode(),
                },
                "stringData": {"b": "from-string-data"},
            }
        )
    )
    assert (await admin(kubesim, "create", "-f", str(manifest))).returncode == 0
    secret = json.loads((await admin(kubesim, "get", "secret", "mixed", "-o", "json")).stdout)
    assert "stringData" not in secret
    assert {k: base64.b64decode(v).decode() for k, v in secret["data"].items()} == {
        "a": "from-data",
        "b": "from-string-data",
    }


async def test_missing_service_account_annotation_is_invalid(kubesim: KubeSim) -> None:
    result = await admin(
        kubesim, "create", "secret", "generic", "tok", "--type=kubernetes.io/service-account-token"
    )
    assert result.returncode == 1
    assert (
        'Secret "tok" is invalid: metadata.annotations[kubernetes.io/service-account.name]: Required value'
        in result.stderr
    )


async def test_invalid_names_get_the_dns1123_messages(kubesim: KubeSim) -> None:
    ns = await admin(kubesim, "create", "ns", "Bad_Name")
    assert ns.stderr.strip() == (
        'The Namespace "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 label '
        "must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric "
        "character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')"
    )
    sa = await admin(kubesim, "create", "sa", "Bad_Name")
    assert (
        'ServiceAccount "Bad_Name" is invalid: metadata.name: Invalid value: "Bad_Name": a lowercase RFC 1123 '
        "subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an "
        "alphanumeric character (e.g. 'example.com', regex used for validation is "
        "'[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')"
    ) in sa.stderr


async def test_create_apply_replace_from_files(kubesim: KubeSim, tmp_path: Path) -> None:
    lease: dict[str, Any] = {
        "apiVersion": "coordination.k8s.io/v1",
        "kind": "Lease",
        "metadata": {"name": "janitor", "namespace": "default"},
        "spec": {"holderIdentity": "replica-1", "leaseDurationSeconds": 15},
    }
    manifest = tmp_path / "lease.yaml"
    manifest.write_text(yaml.safe_dump(lease))
    created = await admin(kubesim, "create", "-f", str(manifest))
    assert created.stdout.strip() == "lease.coordination.k8s.io/janitor created", created.stderr

    lease["spec"]["holderIdentity"] = "replica-2"
    manifest.write_text(yaml.safe_dump(lease))
    applied = await admin(kubesim, "apply", "-f", str(manifest))
    assert applied.stdout.strip() == "lease.coordination.k8s.io/janitor configured", applied.stderr
    assert (await admin(kubesim, "apply", "-f", str(manifest))).stdout.strip() == (
        "lease.coordination.k8s.io/janitor unchanged"
    )
    holder = await admin(kubesim, "get", "lease", "janitor", "-o", "jsonpath={.spec.holderIdentity}")
    assert holder.stdout == "replica-2"

    table = await admin(kubesim, "get", "leases")
    assert table.stdout.splitlines()[0].split() == ["NAME", "HOLDER", "AGE"]
    assert (await admin(kubesim, "replace", "-f", str(manifest))).returncode == 0
    assert (await admin(kubesim, "delete", "-f", str(manifest))).stdout.strip() == (
        'lease.coordination.k8s.io "janitor" deleted'
    )


async def test_pods_default_their_service_account(kubesim: KubeSim) -> None:
    run = await admin(kubesim, "run", "p1", "--image=busybox")
    assert run.stdout.strip() == "pod/p1 created", run.stderr
    sa = await admin(kubesim, "get", "pod", "p1", "-o", "jsonpath={.spec.serviceAccountName}")
    assert sa.stdout == "default"
    missing = await admin(
        kubesim, "run", "p2", "--image=busybox", "--overrides", '{"spec":{"serviceAccountName":"nope"}}'
    )
    assert missing.returncode == 1
    assert (
        'pods "p2" is forbidden: error looking up service account default/nope: serviceaccount "nope" not found'
        in missing.stderr
    )


async def test_get_missing_object_is_not_found(kubesim: KubeSim) -> None:
    result = await admin(kubesim, "get", "sa", "ghost")
    assert result.returncode == 1
    assert result.stderr.strip() == 'Error from server (NotFound): serviceaccounts "ghost" not found'


async def test_kubectl_create_token(kubesim: KubeSim) -> None:
    result = await admin(kubesim, "create", "token", "default", "--audience=vault", "--duration=10m")
    assert result.returncode == 0, result.stderr
    assert result.stdout.count(".") == 2
