"""Bad requests get the Status a real kube-apiserver answers (right code, reason, message) — never a 500."""

from __future__ import annotations

import json
from typing import Any

import pytest
from kubesim_support import call, client

from kubesim import KubeSim

SA_PATH = "/api/v1/namespaces/default/serviceaccounts"


def assert_status(body: Any, code: int, reason: str, message: str | None = None) -> None:
    assert body["kind"] == "Status"
    assert body["apiVersion"] == "v1"
    assert body["status"] == "Failure"
    assert body["code"] == code
    assert body["reason"] == reason
    if message is not None:
        assert body["message"] == message


async def test_malformed_json_is_bad_request(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, resp = await call(
            http, "POST", SA_PATH, data=b"{not json", headers={"Content-Type": "application/json"}
        )
    assert code == 400
    assert resp.content_type == "application/json"
    assert_status(body, 400, "BadRequest")
    assert body["message"].startswith("couldn't get version/kind; json parse error")


@pytest.mark.parametrize(
    ("payload", "fragment"),
    [
        ([1, 2], "cannot unmarshal array"),
        (
            {"kind": "Frobnicator", "apiVersion": "v1", "metadata": {"name": "x"}},
            'no kind "Frobnicator" is registered',
        ),
        (
            {"kind": "Secret", "apiVersion": "v1", "metadata": {"name": "x"}},
            'Secret in version "v1" cannot be handled as a ServiceAccount',
        ),
        (
            {"kind": "ServiceAccount", "apiVersion": "v2", "metadata": {"name": "x"}},
            "does not match the expected API version",
        ),
        (
            {"metadata": {"name": "x", "labels": "oops"}},
            "cannot unmarshal string into Go struct field ServiceAccount.metadata.labels",
        ),
        (
            {"metadata": {"name": "x", "namespace": "other"}},
            "the namespace of the provided object does not match the namespace sent on the request",
        ),
        (
            {"metadata": {"name": "x", "resourceVersion": "5"}},
            "resourceVersion should not be set on objects to be created",
        ),
    ],
)
async def test_undecodable_bodies_are_bad_requests(kubesim: KubeSim, payload: Any, fragment: str) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", SA_PATH, json=payload)
    assert code == 400, body
    assert_status(body, 400, "BadRequest")
    assert fragment in body["message"]


async def test_invalid_name_has_causes(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", SA_PATH, json={"metadata": {"name": "x" * 254}})
    assert code == 422
    assert_status(body, 422, "Invalid")
    assert body["details"]["kind"] == "ServiceAccount"
    assert body["details"]["causes"][0] == {
        "reason": "FieldValueInvalid",
        "message": f'Invalid value: "{"x" * 254}": must be no more than 253 characters',
        "field": "metadata.name",
    }


async def test_namespace_names_are_labels(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", "/api/v1/namespaces", json={"metadata": {"name": "a.b"}})
    assert code == 422
    assert (
        body["message"]
        == 'Namespace "a.b" is invalid: metadata.name: Invalid value: "a.b": must not contain dots'
    )


async def test_missing_name_is_required(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", SA_PATH, json={"metadata": {}})
    assert code == 422
    assert body["message"] == (
        'ServiceAccount "" is invalid: metadata.name: Required value: name or generateName is required'
    )


async def test_generate_name(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", SA_PATH, json={"metadata": {"generateName": "robot-"}})
    assert code == 201
    assert body["metadata"]["name"].startswith("robot-")
    assert len(body["metadata"]["name"]) == len("robot-") + 5


async def test_invalid_labels(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(
            http, "POST", SA_PATH, json={"metadata": {"name": "x", "labels": {"bad key!": "v", "ok": "-bad"}}}
        )
    assert code == 422
    fields = [(c["field"], c["message"].split(":")[1].strip()) for c in body["details"]["causes"]]
    assert ("metadata.labels", '"bad key!"') in fields
    assert ("metadata.labels", '"-bad"') in fields
    assert body["message"].startswith(
        'ServiceAccount "x" is invalid: [metadata.labels: Invalid value: "bad key!": name part must consist'
    )


async def test_missing_service_account_annotation(kubesim: KubeSim) -> None:
    secret = {"metadata": {"name": "tok"}, "type": "kubernetes.io/service-account-token"}
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", "/api/v1/namespaces/default/secrets", json=secret)
    assert code == 422
    assert body["message"] == (
        'Secret "tok" is invalid: metadata.annotations[kubernetes.io/service-account.name]: Required value'
    )
    assert body["details"]["causes"] == [
        {
            "reason": "FieldValueRequired",
            "message": "Required value",
            "field": "metadata.annotations[kubernetes.io/service-account.name]",
        }
    ]


async def test_secret_data_must_be_base64(kubesim: KubeSim) -> None:
    secret = {"metadata": {"name": "s"}, "data": {"k": "not base64!"}}
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", "/api/v1/namespaces/default/secrets", json=secret)
    assert code == 400
    assert "illegal base64 data" in body["message"]


async def test_create_in_missing_namespace(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(
            http, "POST", "/api/v1/namespaces/nowhere/serviceaccounts", json={"metadata": {"name": "x"}}
        )
    assert code == 404
    assert_status(body, 404, "NotFound", 'namespaces "nowhere" not found')
    assert body["details"] == {"name": "nowhere", "kind": "namespaces"}


async def test_already_exists(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        await call(http, "POST", SA_PATH, json={"metadata": {"name": "twice"}})
        code, body, _ = await call(http, "POST", SA_PATH, json={"metadata": {"name": "twice"}})
    assert code == 409
    assert_status(body, 409, "AlreadyExists", 'serviceaccounts "twice" already exists')


async def test_update_name_mismatch(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        await call(http, "POST", SA_PATH, json={"metadata": {"name": "a"}})
        code, body, _ = await call(http, "PUT", f"{SA_PATH}/a", json={"metadata": {"name": "b"}})
    assert code == 400
    assert_status(
        body, 400, "BadRequest", "the name of the object (b) does not match the name on the URL (a)"
    )


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/frobnicators",
        "/api/v2/namespaces",
        "/api/v1/namespaces/default/serviceaccounts/x/frob",
    ],
)
async def test_unknown_paths_under_the_api(kubesim: KubeSim, path: str) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "GET", path)
    assert code == 404
    assert_status(body, 404, "NotFound", "the server could not find the requested resource")


@pytest.mark.parametrize("path", ["/apis/example.com/v1/widgets", "/apis/example.com", "/nope"])
async def test_paths_outside_the_api_get_the_mux_plain_404(kubesim: KubeSim, path: str) -> None:
    # as the real kube-apiserver: an unserved group or a non-API path falls through to Go's http.NotFound
    async with client(kubesim) as http:
        code, body, resp = await call(http, "GET", path)
    assert code == 404
    assert resp.content_type == "text/plain"
    assert body == "404 page not found\n"


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("POST", f"{SA_PATH}/default"),
        ("PUT", SA_PATH),
        ("POST", "/api/v1/serviceaccounts"),
        ("GET", "/api/v1/namespaces/default/serviceaccounts/default/token"),
        ("GET", "/apis/authorization.k8s.io/v1/selfsubjectaccessreviews"),
        ("DELETE", "/version"),
    ],
)
async def test_wrong_method(kubesim: KubeSim, method: str, path: str) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, method, path, json={})
    assert code == 405
    assert_status(body, 405, "MethodNotAllowed")


async def test_unsupported_media_type(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "POST", SA_PATH, data=b"x", headers={"Content-Type": "text/csv"})
        patch_code, patch_body, _ = await call(
            http,
            "PATCH",
            f"{SA_PATH}/default",
            data=b"{}",
            headers={"Content-Type": "application/apply-patch+yaml"},
        )
    assert code == 415
    assert_status(body, 415, "UnsupportedMediaType")
    assert patch_code == 415
    assert_status(patch_body, 415, "UnsupportedMediaType")


async def test_yaml_bodies_are_accepted(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(
            http,
            "POST",
            SA_PATH,
            data=b"metadata:\n  name: from-yaml\n",
            headers={"Content-Type": "application/yaml"},
        )
    assert code == 201
    assert body["metadata"]["name"] == "from-yaml"


async def test_bad_label_selector(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "GET", SA_PATH, params={"labelSelector": "a b c"})
    assert code == 400
    assert_status(body, 400, "BadRequest")


async def test_unsupported_field_selector(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "GET", SA_PATH, params={"fieldSelector": "spec.whatever=x"})
        ok_code, ok_body, _ = await call(
            http, "GET", SA_PATH, params={"fieldSelector": "metadata.name=default"}
        )
    assert code == 400
    assert body["message"] == "field label not supported: spec.whatever"
    assert ok_code == 200
    assert [i["metadata"]["name"] for i in ok_body["items"]] == ["default"]


async def test_list_wire_format(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(http, "GET", "/api/v1/namespaces")
    assert code == 200
    assert body["kind"] == "NamespaceList"
    assert body["apiVersion"] == "v1"
    assert body["metadata"]["resourceVersion"].isdigit()
    # items of a typed list carry no kind/apiVersion
    assert "kind" not in body["items"][0]


async def test_pagination(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, first, _ = await call(http, "GET", "/api/v1/namespaces", params={"limit": "3"})
        _, rest, _ = await call(
            http,
            "GET",
            "/api/v1/namespaces",
            params={"limit": "3", "continue": first["metadata"]["continue"]},
        )
    assert len(first["items"]) == 3
    assert first["metadata"]["remainingItemCount"] == 1
    assert [i["metadata"]["name"] for i in rest["items"]] == ["kube-system"]
    assert "continue" not in rest["metadata"]


async def test_delete_answers_status_or_object(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, sa, _ = await call(http, "POST", SA_PATH, json={"metadata": {"name": "temp"}})
        code, body, _ = await call(http, "DELETE", f"{SA_PATH}/temp")
        again, missing, _ = await call(http, "DELETE", f"{SA_PATH}/temp")
    assert code == 200
    assert body == {
        "kind": "Status",
        "apiVersion": "v1",
        "metadata": {},
        "status": "Success",
        "details": {"name": "temp", "kind": "serviceaccounts", "uid": sa["metadata"]["uid"]},
    }
    assert again == 404
    assert_status(missing, 404, "NotFound", 'serviceaccounts "temp" not found')


async def test_delete_uid_precondition(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        _, sa, _ = await call(http, "POST", SA_PATH, json={"metadata": {"name": "guarded"}})
        code, body, _ = await call(
            http,
            "DELETE",
            f"{SA_PATH}/guarded",
            json={"preconditions": {"uid": "00000000-0000-0000-0000-000000000000"}},
        )
        ok, _, _ = await call(
            http, "DELETE", f"{SA_PATH}/guarded", json={"preconditions": {"uid": sa["metadata"]["uid"]}}
        )
    assert code == 409
    assert_status(body, 409, "Conflict")
    assert body["message"] == (
        'Operation cannot be fulfilled on ServiceAccount "guarded": the UID in the precondition '
        f"(00000000-0000-0000-0000-000000000000) does not match the UID in record ({sa['metadata']['uid']}). "
        "The object might have been deleted and then recreated"
    )
    assert ok == 200


async def test_patch_kinds(kubesim: KubeSim) -> None:
    path = f"{SA_PATH}/default"
    async with client(kubesim) as http:
        merge, body, _ = await call(
            http,
            "PATCH",
            path,
            data=json.dumps({"metadata": {"labels": {"a": "1"}}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert merge == 200 and body["metadata"]["labels"] == {"a": "1"}
        strategic, body, _ = await call(
            http,
            "PATCH",
            path,
            data=json.dumps({"metadata": {"labels": {"b": "2"}}}),
            headers={"Content-Type": "application/strategic-merge-patch+json"},
        )
        assert strategic == 200 and body["metadata"]["labels"] == {"a": "1", "b": "2"}
        ops = [
            {"op": "remove", "path": "/metadata/labels/a"},
            {"op": "add", "path": "/metadata/labels/c", "value": "3"},
        ]
        jp, body, _ = await call(
            http, "PATCH", path, data=json.dumps(ops), headers={"Content-Type": "application/json-patch+json"}
        )
        assert jp == 200 and body["metadata"]["labels"] == {"b": "2", "c": "3"}
        failed, body, _ = await call(
            http,
            "PATCH",
            path,
            data=json.dumps([{"op": "test", "path": "/metadata/name", "value": "other"}]),
            headers={"Content-Type": "application/json-patch+json"},
        )
        assert failed == 422
        renamed, body, _ = await call(
            http,
            "PATCH",
            path,
            data=json.dumps({"metadata": {"name": "other"}}),
            headers={"Content-Type": "application/merge-patch+json"},
        )
        assert renamed == 422
        assert 'metadata.name: Invalid value: "other": field is immutable' in body["message"]


async def test_dry_run_stores_nothing(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        code, body, _ = await call(
            http, "POST", SA_PATH, params={"dryRun": "All"}, json={"metadata": {"name": "dry"}}
        )
        get_code, _, _ = await call(http, "GET", f"{SA_PATH}/dry")
    assert code == 201
    assert body["metadata"]["name"] == "dry"
    assert get_code == 404


async def test_no_response_is_ever_a_500_for_garbage(kubesim: KubeSim) -> None:
    bodies = [
        b"",
        b"null",
        b"42",
        b'"s"',
        b"{}",
        b'{"metadata": 5}',
        b'{"metadata": {"name": 5}}',
        b"\xff\xfe",
    ]
    paths = [
        SA_PATH,
        "/api/v1/namespaces",
        "/api/v1/namespaces/default/secrets",
        "/apis/coordination.k8s.io/v1/namespaces/default/leases",
    ]
    async with client(kubesim) as http:
        for path in paths:
            for raw in bodies:
                code, body, _ = await call(
                    http, "POST", path, data=raw, headers={"Content-Type": "application/json"}
                )
                assert 400 <= code < 500, (path, raw, body)
                assert body["kind"] == "Status"


async def test_delete_collection_by_label(kubesim: KubeSim) -> None:
    async with client(kubesim) as http:
        for name, team in (("a", "x"), ("b", "x"), ("c", "y")):
            await call(http, "POST", SA_PATH, json={"metadata": {"name": name, "labels": {"team": team}}})
        code, body, _ = await call(http, "DELETE", SA_PATH, params={"labelSelector": "team=x"})
        _, left, _ = await call(http, "GET", SA_PATH, params={"labelSelector": "team"})
    assert code == 200
    assert body["kind"] == "ServiceAccountList"
    assert sorted(i["metadata"]["name"] for i in body["items"]) == ["a", "b"]
    assert [i["metadata"]["name"] for i in left["items"]] == ["c"]
