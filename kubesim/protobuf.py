"""Decoding of `application/vnd.kubernetes.protobuf` request bodies into the JSON form of the object.

kubectl 1.32's typed clients (`kubectl create namespace|serviceaccount|secret|role|rolebinding|token`,
`kubectl auth can-i|whoami`) send protobuf. The body is the runtime.Unknown envelope
(magic "k8s\\0", then typeMeta, raw, contentEncoding, contentType) around the generated message of the kind.
Only the kinds this simulator serves are described below (field numbers from k8s.io/api generated.proto);
answers are always JSON, which those clients accept too.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

MAGIC = b"k8s\x00"
CONTENT_TYPE = "application/vnd.kubernetes.protobuf"


class ProtobufError(ValueError):
    pass


@dataclass(frozen=True)
class F:
    """One field: JSON name, type, repeated, and whether a zero value is meaningful (a Go pointer field)."""

    name: str
    type: FieldType
    repeated: bool = False
    pointer: bool = False


# "string" | "bytes" | "bool" | "int" | "time" | "microtime" | message schema | ("map", value type)
FieldType = str | dict[int, F] | tuple[str, Any]
Schema = dict[int, F]

_STRING_MAP = ("map", "string")

OWNER_REFERENCE: Schema = {
    1: F("kind", "string"),
    3: F("name", "string"),
    4: F("uid", "string"),
    5: F("apiVersion", "string"),
    6: F("controller", "bool", pointer=True),
    7: F("blockOwnerDeletion", "bool", pointer=True),
}
OBJECT_META: Schema = {
    1: F("name", "string"),
    2: F("generateName", "string"),
    3: F("namespace", "string"),
    5: F("uid", "string"),
    6: F("resourceVersion", "string"),
    7: F("generation", "int"),
    8: F("creationTimestamp", "time"),
    9: F("deletionTimestamp", "time", pointer=True),
    10: F("deletionGracePeriodSeconds", "int", pointer=True),
    11: F("labels", _STRING_MAP),
    12: F("annotations", _STRING_MAP),
    13: F("ownerReferences", OWNER_REFERENCE, repeated=True),
    14: F("finalizers", "string", repeated=True),
}
OBJECT_REFERENCE: Schema = {
    1: F("kind", "string"),
    2: F("namespace", "string"),
    3: F("name", "string"),
    4: F("uid", "string"),
    5: F("apiVersion", "string"),
    6: F("resourceVersion", "string"),
    7: F("fieldPath", "string"),
}
POLICY_RULE: Schema = {
    1: F("verbs", "string", repeated=True),
    2: F("apiGroups", "string", repeated=True),
    3: F("resources", "string", repeated=True),
    4: F("resourceNames", "string", repeated=True),
    5: F("nonResourceURLs", "string", repeated=True),
}
SUBJECT: Schema = {
    1: F("kind", "string"),
    2: F("apiGroup", "string"),
    3: F("name", "string"),
    4: F("namespace", "string"),
}
ROLE_REF: Schema = {1: F("apiGroup", "string"), 2: F("kind", "string"), 3: F("name", "string")}
RESOURCE_ATTRIBUTES: Schema = {
    1: F("namespace", "string"),
    2: F("verb", "string"),
    3: F("group", "string"),
    4: F("version", "string"),
    5: F("resource", "string"),
    6: F("subresource", "string"),
    7: F("name", "string"),
}
NON_RESOURCE_ATTRIBUTES: Schema = {1: F("path", "string"), 2: F("verb", "string")}
_META = F("metadata", OBJECT_META)
_EXTRA = ("map", {1: F("items", "string", repeated=True)})

SCHEMAS: dict[str, Schema] = {
    "Namespace": {
        1: _META,
        2: F("spec", {1: F("finalizers", "string", repeated=True)}),
        3: F("status", {1: F("phase", "string")}),
    },
    "ServiceAccount": {
        1: _META,
        2: F("secrets", OBJECT_REFERENCE, repeated=True),
        3: F("imagePullSecrets", {1: F("name", "string")}, repeated=True),
        4: F("automountServiceAccountToken", "bool", pointer=True),
    },
    "Secret": {
        1: _META,
        2: F("data", ("map", "bytes")),
        3: F("type", "string"),
        4: F("stringData", _STRING_MAP),
        5: F("immutable", "bool", pointer=True),
    },
    "Role": {1: _META, 2: F("rules", POLICY_RULE, repeated=True)},
    "ClusterRole": {1: _META, 2: F("rules", POLICY_RULE, repeated=True)},
    "RoleBinding": {1: _META, 2: F("subjects", SUBJECT, repeated=True), 3: F("roleRef", ROLE_REF)},
    "ClusterRoleBinding": {1: _META, 2: F("subjects", SUBJECT, repeated=True), 3: F("roleRef", ROLE_REF)},
    "Lease": {
        1: _META,
        2: F(
            "spec",
            {
                1: F("holderIdentity", "string", pointer=True),
                2: F("leaseDurationSeconds", "int", pointer=True),
                3: F("acquireTime", "microtime", pointer=True),
                4: F("renewTime", "microtime", pointer=True),
                5: F("leaseTransitions", "int", pointer=True),
                6: F("strategy", "string", pointer=True),
                7: F("preferredHolder", "string", pointer=True),
            },
        ),
    },
    "CertificateSigningRequest": {
        1: _META,
        2: F(
            "spec",
            {
                1: F("request", "bytes"),
                2: F("username", "string"),
                3: F("uid", "string"),
                4: F("groups", "string", repeated=True),
                5: F("usages", "string", repeated=True),
                6: F("extra", _EXTRA),
                7: F("signerName", "string"),
                8: F("expirationSeconds", "int", pointer=True),
            },
        ),
        3: F(
            "status",
            {
                1: F(
                    "conditions",
                    {
                        1: F("type", "string"),
                        2: F("reason", "string"),
                        3: F("message", "string"),
                        4: F("lastUpdateTime", "time"),
                        5: F("lastTransitionTime", "time"),
                        6: F("status", "string"),
                    },
                    repeated=True,
                ),
                2: F("certificate", "bytes"),
            },
        ),
    },
    "TokenRequest": {
        1: _META,
        2: F(
            "spec",
            {
                1: F("audiences", "string", repeated=True),
                3: F(
                    "boundObjectRef",
                    {
                        1: F("kind", "string"),
                        2: F("apiVersion", "string"),
                        3: F("name", "string"),
                        4: F("uid", "string"),
                    },
                    pointer=True,
                ),
                4: F("expirationSeconds", "int", pointer=True),
            },
        ),
    },
    "TokenReview": {
        1: _META,
        2: F("spec", {1: F("token", "string"), 2: F("audiences", "string", repeated=True)}),
    },
    "SelfSubjectReview": {1: _META},
    "SelfSubjectAccessReview": {
        1: _META,
        2: F(
            "spec",
            {
                1: F("resourceAttributes", RESOURCE_ATTRIBUTES, pointer=True),
                2: F("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES, pointer=True),
            },
        ),
    },
    "SubjectAccessReview": {
        1: _META,
        2: F(
            "spec",
            {
                1: F("resourceAttributes", RESOURCE_ATTRIBUTES, pointer=True),
                2: F("nonResourceAttributes", NON_RESOURCE_ATTRIBUTES, pointer=True),
                3: F("user", "string"),
                4: F("groups", "string", repeated=True),
                5: F("extra", _EXTRA),
                6: F("uid", "string"),
            },
        ),
    },
    "SelfSubjectRulesReview": {1: _META, 2: F("spec", {1: F("namespace", "string")})},
    "DeleteOptions": {
        1: F("gracePeriodSeconds", "int", pointer=True),
        2: F(
            "preconditions",
            {1: F("uid", "string", pointer=True), 2: F("resourceVersion", "string", pointer=True)},
            pointer=True,
        ),
        3: F("orphanDependents", "bool", pointer=True),
        4: F("propagationPolicy", "string", pointer=True),
        5: F("dryRun", "string", repeated=True),
    },
}


# -- wire format --------------------------------------------------------------------------------------------
def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtobufError("truncated varint")
        byte = buf[pos]
        pos += 1
        result |= (byte & 0x7F) << shift
        if not byte & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtobufError("varint too long")


def fields(buf: bytes) -> list[tuple[int, int, int | bytes]]:
    """(field number, wire type, value) for each field of a message."""
    out: list[tuple[int, int, int | bytes]] = []
    pos = 0
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        number, wire = key >> 3, key & 7
        value: int | bytes
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            length, pos = _varint(buf, pos)
            if pos + length > len(buf):
                raise ProtobufError("truncated field")
            value, pos = buf[pos : pos + length], pos + length
        elif wire == 1:
            value, pos = int.from_bytes(buf[pos : pos + 8], "little"), pos + 8
        elif wire == 5:
            value, pos = int.from_bytes(buf[pos : pos + 4], "little"), pos + 4
        else:
            raise ProtobufError(f"unsupported wire type {wire}")
        out.append((number, wire, value))
    return out


def _time(buf: bytes, micro: bool) -> str | None:
    seconds = nanos = 0
    for number, _wire, value in fields(buf):
        if number == 1 and isinstance(value, int):
            seconds = value - (1 << 64) if value >= 1 << 63 else value
        elif number == 2 and isinstance(value, int):
            nanos = value
    if seconds == 0 and nanos == 0:
        return None
    stamp = datetime.fromtimestamp(seconds, UTC)
    if micro:
        return stamp.strftime("%Y-%m-%dT%H:%M:%S") + f".{nanos // 1000:06d}Z"
    return stamp.strftime("%Y-%m-%dT%H:%M:%SZ")


def _scalar(kind: str, wire: int, value: int | bytes) -> Any:
    if kind in ("string", "bytes", "time", "microtime"):
        if not isinstance(value, bytes):
            raise ProtobufError("expected a length-delimited field")
        if kind == "string":
            return value.decode("utf-8")
        if kind == "bytes":
            return base64.b64encode(value).decode()
        return _time(value, kind == "microtime")
    if not isinstance(value, int):
        raise ProtobufError("expected a varint field")
    if kind == "bool":
        return value != 0
    return value - (1 << 64) if value >= 1 << 63 else value


def _is_zero(value: Any) -> bool:
    return value is None or value == "" or value == 0 or value is False or value == {} or value == []


def decode_message(buf: bytes, schema: Schema) -> dict[str, Any]:
    out: dict[str, Any] = {}
    for number, wire, value in fields(buf):
        spec = schema.get(number)
        if spec is None:
            continue
        if isinstance(spec.type, tuple):
            if not isinstance(value, bytes):
                raise ProtobufError("expected a map entry")
            key: Any = ""
            item: Any = None
            value_type = spec.type[1]
            for n, w, v in fields(value):
                if n == 1:
                    key = _scalar("string", w, v)
                elif n == 2:
                    item = (
                        decode_message(v, value_type)
                        if isinstance(value_type, dict) and isinstance(v, bytes)
                        else _scalar(value_type, w, v)
                    )
            if item is None:
                item = "" if value_type in ("string", "bytes") else {}
            if isinstance(value_type, dict) and isinstance(item, dict) and list(item) == ["items"]:
                item = item["items"]
            out.setdefault(spec.name, {})[key] = item
            continue
        if isinstance(spec.type, dict):
            if not isinstance(value, bytes):
                raise ProtobufError("expected an embedded message")
            decoded: Any = decode_message(value, spec.type)
        else:
            decoded = _scalar(spec.type, wire, value)
        if spec.repeated:
            out.setdefault(spec.name, []).append(decoded)
        else:
            out[spec.name] = decoded
    # Go writes every non-pointer field; JSON's omitempty drops their zero values
    for spec in schema.values():
        if spec.name in out and not spec.pointer and not spec.repeated and not isinstance(spec.type, tuple):
            if _is_zero(out[spec.name]):
                del out[spec.name]
        elif spec.pointer and spec.name in out and out[spec.name] is None:
            del out[spec.name]
    return out


def decode(body: bytes) -> dict[str, Any]:
    """An object in its JSON form from a protobuf request body (runtime.Unknown envelope)."""
    if not body.startswith(MAGIC):
        raise ProtobufError(
            "provided data does not appear to be a protobuf message, expected prefix [107 56 115 0]"
        )
    api_version = kind = ""
    raw = b""
    for number, _wire, value in fields(body[len(MAGIC) :]):
        if number == 1 and isinstance(value, bytes):
            for n, _w, v in fields(value):
                if n == 1 and isinstance(v, bytes):
                    api_version = v.decode()
                elif n == 2 and isinstance(v, bytes):
                    kind = v.decode()
        elif number == 2 and isinstance(value, bytes):
            raw = value
    schema = SCHEMAS.get(kind)
    if schema is None:
        raise ProtobufError(f'no kind "{kind}" is registered for version "{api_version}"')
    obj = decode_message(raw, schema)
    return {"kind": kind, "apiVersion": api_version, **obj}
