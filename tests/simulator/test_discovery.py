"""Discovery documents, Table output and OpenAPI, as kubectl 1.32 reads them."""

from __future__ import annotations

import pytest
from kubesim_support import admin, call, client

from kubesim import KubeSim, SimOptions


async def test_version(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "GET", "/version")
    assert code == 200
    assert body["gitVersion"] == SimOptions().git_version
    assert (body["major"], body["minor"]) == ("1", "32")
    assert body["platform"].count("/") == 1


async def test_legacy_discovery_documents(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, api, _ = await call(http, "GET", "/api")
        _, core, _ = await call(http, "GET", "/api/v1")
        _, groups, _ = await call(http, "GET", "/apis")
        _, authn, _ = await call(http, "GET", "/apis/authentication.k8s.io/v1")
        missing, _, _ = await call(http, "GET", "/apis/apps/v1")
    assert api["kind"] == "APIVersions"
    assert api["versions"] == ["v1"]
    by_name = {r["name"]: r for r in core["resources"]}
    assert by_name["serviceaccounts"]["shortNames"] == ["sa"]
    assert by_name["namespaces"]["namespaced"] is False
    assert by_name["serviceaccounts/token"] == {
        "name": "serviceaccounts/token",
        "singularName": "",
        "namespaced": True,
        "group": "authentication.k8s.io",
        "version": "v1",
        "kind": "TokenRequest",
        "verbs": ["create"],
    }
    names = [g["name"] for g in groups["groups"]]
    assert {
        "rbac.authorization.k8s.io",
        "coordination.k8s.io",
        "authentication.k8s.io",
        "authorization.k8s.io",
    } <= set(names)
    assert {r["name"]: r["verbs"] for r in authn["resources"]} == {
        "selfsubjectreviews": ["create"],
        "tokenreviews": ["create"],
    }
    assert missing == 404


@pytest.mark.kubectl
async def test_kubectl_api_resources_and_explain_free_commands(kubesim: KubeSim) -> None:
    result = await admin(kubesim, "api-resources", "--api-group=rbac.authorization.k8s.io", "-o", "name")
    assert result.stdout.split() == [
        "clusterrolebindings.rbac.authorization.k8s.io",
        "clusterroles.rbac.authorization.k8s.io",
        "rolebindings.rbac.authorization.k8s.io",
        "roles.rbac.authorization.k8s.io",
    ]
    versions = await admin(kubesim, "api-versions")
    assert "coordination.k8s.io/v1" in versions.stdout.split()
    version = await admin(kubesim, "version", "-o", "json")
    assert '"gitVersion": "v1.32.0"' in version.stdout


async def test_table_output(kubesim: KubeSim) -> None:
    accept = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json"
    async with client(kubesim) as http:
        code, table, _ = await call(
            http, "GET", "/api/v1/namespaces/default/secrets", headers={"Accept": accept}
        )
        _, single, _ = await call(http, "GET", "/api/v1/namespaces/default", headers={"Accept": accept})
    assert code == 200
    assert table["kind"] == "Table"
    assert [c["name"] for c in table["columnDefinitions"]] == ["Name", "Type", "Data", "Age"]
    assert single["rows"][0]["cells"][:2] == ["default", "Active"]
    assert single["rows"][0]["object"]["kind"] == "PartialObjectMetadata"


async def test_openapi_v3_declares_server_side_field_validation(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, root, _ = await call(http, "GET", "/openapi/v3")
        url = root["paths"]["apis/coordination.k8s.io/v1"]["serverRelativeURL"]
        _, doc, _ = await call(http, "GET", url)
    patch = doc["paths"]["/apis/coordination.k8s.io/v1/namespaces/{namespace}/leases/{name}"]["patch"]
    assert patch["x-kubernetes-group-version-kind"] == {
        "group": "coordination.k8s.io",
        "version": "v1",
        "kind": "Lease",
    }
    assert "fieldValidation" in [p["name"] for p in patch["parameters"]]


def test_human_duration() -> None:
    from kubesim.tables import human_duration

    assert [
        human_duration(s)
        for s in (0, 59, 119, 120, 125, 600, 3 * 3600 + 60, 9 * 3600, 3 * 86400 + 3600, 400 * 86400)
    ] == [
        "0s",
        "59s",
        "119s",
        "2m",
        "2m5s",
        "10m",
        "3h1m",
        "9h",
        "3d1h",
        "400d",
    ]
