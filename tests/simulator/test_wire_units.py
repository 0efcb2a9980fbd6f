"""Unit tests of the wire pieces: validation messages, RequestInfo, patches, protobuf bodies."""

from __future__ import annotations

import re

import pytest
from hypothesis import given
from hypothesis import strategies as st

from kubesim import patch, protobuf, request_info, validation
from kubesim.status import ApiError

LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")


@given(st.text(alphabet="abcXYZ019-._", max_size=70))
def test_dns1123_label_agrees_with_the_regex(value: str) -> None:
    valid = bool(LABEL.match(value)) and len(value) <= 63
    assert (validation.dns1123_label(value) == []) == valid


def test_label_key_messages() -> None:
    assert validation.qualified_name("example.com/ok") == []
    assert validation.qualified_name("/x") == ["prefix part must be non-empty"]
    assert validation.qualified_name("a/b/c")[0].startswith("a qualified name must consist of alphanumeric")
    assert validation.qualified_name("Bad_Prefix/x")[0].startswith(
        "prefix part a lowercase RFC 1123 subdomain"
    )
    assert validation.label_value("") == []
    assert validation.label_value("x" * 64) == ["must be no more than 63 characters"]


def test_path_segment_names() -> None:
    assert validation.path_segment_name("system:auth-delegator") == []
    assert validation.path_segment_name("..") == ["may not be '..'"]
    assert validation.path_segment_name("a/b%") == ["may not contain '/'", "may not contain '%'"]


@pytest.mark.parametrize(
    ("method", "path", "query", "expected"),
    [
        ("GET", "/api/v1/namespaces", {}, ("list", "", "namespaces", "", "")),
        ("GET", "/api/v1/namespaces/ns1", {}, ("get", "ns1", "namespaces", "ns1", "")),
        (
            "POST",
            "/api/v1/namespaces/ns1/serviceaccounts/sa1/token",
            {},
            ("create", "ns1", "serviceaccounts", "sa1", "token"),
        ),
        ("GET", "/api/v1/serviceaccounts", {"watch": "true"}, ("watch", "", "serviceaccounts", "", "")),
        (
            "DELETE",
            "/apis/coordination.k8s.io/v1/namespaces/x/leases",
            {},
            ("deletecollection", "x", "leases", "", ""),
        ),
        (
            "GET",
            "/api/v1/namespaces/x/secrets",
            {"fieldSelector": "metadata.name=s1"},
            ("list", "x", "secrets", "s1", ""),
        ),
        ("GET", "/api/v1/watch/namespaces/x/secrets", {}, ("watch", "x", "secrets", "", "")),
    ],
)
def test_request_info(method: str, path: str, query: dict[str, str], expected: tuple[str, ...]) -> None:
    info = request_info.parse(method, path, query)
    assert info.is_resource_request
    assert (info.verb, info.namespace, info.resource, info.name, info.subresource) == expected


def test_non_resource_request_info() -> None:
    for path in ("/api", "/api/v1", "/apis/rbac.authorization.k8s.io/v1", "/version", "/"):
        info = request_info.parse("GET", path, {})
        assert not info.is_resource_request
        assert info.verb == "get"


def test_json_patch_operations() -> None:
    doc = {"a": {"b": [1, 2]}, "c": 1}
    ops = [
        {"op": "add", "path": "/a/b/-", "value": 3},
        {"op": "replace", "path": "/c", "value": 2},
        {"op": "copy", "from": "/c", "path": "/d"},
        {"op": "move", "from": "/d", "path": "/e"},
        {"op": "remove", "path": "/a/b/0"},
        {"op": "test", "path": "/e", "value": 2},
    ]
    assert patch.json_patch(doc, ops) == {"a": {"b": [2, 3]}, "c": 2, "e": 2}
    with pytest.raises(ApiError) as err:
        patch.json_patch(doc, [{"op": "remove", "path": "/missing"}])
    assert err.value.code == 422


def test_merge_patch_deletes_with_null() -> None:
    assert patch.merge_patch({"a": 1, "b": {"c": 2, "d": 3}}, {"a": None, "b": {"c": None}}) == {
        "b": {"d": 3}
    }


def _varint(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _field(number: int, payload: bytes | int) -> bytes:
    if isinstance(payload, int):
        return _varint(number << 3) + _varint(payload)
    return _varint(number << 3 | 2) + _varint(len(payload)) + payload


def _envelope(api_version: str, kind: str, raw: bytes) -> bytes:
    type_meta = _field(1, api_version.encode()) + _field(2, kind.encode())
    return protobuf.MAGIC + _field(1, type_meta) + _field(2, raw) + _field(3, b"") + _field(4, b"")


def test_protobuf_lease() -> None:
    meta = (
        _field(1, b"janitor")
        + _field(2, b"")
        + _field(3, b"default")
        + _field(7, 0)
        + _field(11, _field(1, b"k") + _field(2, b"v"))
    )
    renew = _field(1, 1735689600) + _field(2, 123456000)
    spec = _field(1, b"replica-1") + _field(2, 15) + _field(4, renew) + _field(5, 0)
    obj = protobuf.decode(_envelope("coordination.k8s.io/v1", "Lease", _field(1, meta) + _field(2, spec)))
    assert obj == {
        "kind": "Lease",
        "apiVersion": "coordination.k8s.io/v1",
        "metadata": {"name": "janitor", "namespace": "default", "labels": {"k": "v"}},
        "spec": {
            "holderIdentity": "replica-1",
            "leaseDurationSeconds": 15,
            "renewTime": "2025-01-01T00:00:00.123456Z",
            # a pointer field keeps its zero value
            "leaseTransitions": 0,
        },
    }


def test_protobuf_secret_data_is_base64() -> None:
    raw = (
        _field(1, _field(1, b"s"))
        + _field(2, _field(1, b"k") + _field(2, b"\x00\xff"))
        + _field(3, b"Opaque")
    )
    obj = protobuf.decode(_envelope("v1", "Secret", raw))
    assert obj["data"] == {"k": "AP8="}
    assert obj["type"] == "Opaque"


def test_protobuf_rejects_garbage() -> None:
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(b"not protobuf")
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(_envelope("v1", "Unknown", b""))
    with pytest.raises(protobuf.ProtobufError):
        protobuf.decode(protobuf.MAGIC + b"\x0a\xff")
