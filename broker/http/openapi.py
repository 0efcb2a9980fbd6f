"""The OpenAPI 3.1 description of the HTTP API, built from the pydantic models and the route table."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from pydantic import BaseModel
from pydantic.json_schema import JsonSchemaMode, models_json_schema

from broker.http.models import Problem

OPENAPI_VERSION = "3.1.0"
REF_TEMPLATE = "#/components/schemas/{model}"
PROBLEM_TYPE = "application/problem+json"

# A response body: a model, or an inline JSON schema (for text bodies such as a kubeconfig).
Body = type[BaseModel] | Mapping[str, Any]
# several models on one media type are offered as oneOf
Content = Mapping[str, Body | Sequence[type[BaseModel]]]


@dataclass(frozen=True)
class Reply:
    description: str
    content: Content = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)  # header name → description


@dataclass(frozen=True)
class Operation:
    method: str
    path: str
    operation_id: str
    summary: str
    authenticated: bool
    replies: Mapping[int, Reply]
    request_model: type[BaseModel] | None = None
    # problem+json statuses this operation can return beyond the ones added for everyone
    errors: Mapping[int, str] = field(default_factory=dict)
    query: Sequence[Mapping[str, Any]] = ()
    tags: Sequence[str] = ()


_RETRY_AFTER = "seconds to wait before trying again"
_STANDARD_ERRORS = {500: "unexpected error (the body names the request id)"}
_AUTH_ERRORS = {401: "no credential, or a credential that was refused"}
_BODY_ERRORS = {
    400: "the body is not a JSON object, or a parameter is not understood",
    413: "the body is larger than the configured limit",
    415: "the body is not application/json",
    422: "the body fails validation; `errors` names each field",
}
SECURITY_SCHEMES: dict[str, Any] = {
    "mutualTLS": {"type": "mutualTLS", "description": "client certificate: CN = user, each O = a group"},
    "apiKey": {"type": "apiKey", "in": "header", "name": "X-API-Key"},
    "bearer": {"type": "http", "scheme": "bearer", "description": "an API key, or (later) an OIDC JWT"},
}


class _Schemas:
    """Collects every model an operation mentions and turns them into components.schemas at the end."""

    def __init__(self) -> None:
        self._models: dict[type[BaseModel], None] = {}

    def ref(self, model: type[BaseModel]) -> dict[str, Any]:
        self._models[model] = None
        return {"$ref": REF_TEMPLATE.format(model=model.__name__)}

    def body(self, body: Body | Sequence[type[BaseModel]]) -> dict[str, Any]:
        if isinstance(body, type):
            return self.ref(body)
        if isinstance(body, Mapping):
            return dict(body)
        return {"oneOf": [self.ref(m) for m in body]}

    def components(self) -> dict[str, Any]:
        mode: JsonSchemaMode = "validation"
        _, top = models_json_schema([(m, mode) for m in self._models], ref_template=REF_TEMPLATE)
        return dict(top.get("$defs", {}))


def _headers(headers: Mapping[str, str]) -> dict[str, Any]:
    return {name: {"description": text, "schema": {"type": "string"}} for name, text in headers.items()}


def _problem_reply(schemas: _Schemas, status: int, description: str) -> dict[str, Any]:
    reply: dict[str, Any] = {
        "description": description,
        "content": {PROBLEM_TYPE: {"schema": schemas.ref(Problem)}},
    }
    extra: dict[str, str] = {}
    if status == 401:
        extra["WWW-Authenticate"] = "the authentication challenge"
    if status in (429, 503):
        extra["Retry-After"] = _RETRY_AFTER
    if extra:
        reply["headers"] = _headers(extra)
    return reply


def _operation(op: Operation, schemas: _Schemas) -> dict[str, Any]:
    doc: dict[str, Any] = {"operationId": op.operation_id, "summary": op.summary}
    if op.tags:
        doc["tags"] = list(op.tags)
    parameters = [
        {
            "name": "X-Request-ID",
            "in": "header",
            "required": False,
            "description": "echoed back; generated when absent",
            "schema": {"type": "string", "maxLength": 128, "pattern": "^[A-Za-z0-9._:-]+$"},
        },
        *(dict(q) for q in op.query),
    ]
    doc["parameters"] = parameters
    if op.request_model is not None:
        doc["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": schemas.ref(op.request_model)}},
        }
    responses: dict[str, Any] = {}
    for status, reply in sorted(op.replies.items()):
        entry: dict[str, Any] = {"description": reply.description}
        if reply.content:
            entry["content"] = {mt: {"schema": schemas.body(b)} for mt, b in reply.content.items()}
        if reply.headers:
            entry["headers"] = _headers(reply.headers)
        responses[str(status)] = entry
    errors: dict[int, str] = {**_STANDARD_ERRORS}
    if op.authenticated:
        errors.update(_AUTH_ERRORS)
    if op.request_model is not None:
        errors.update(_BODY_ERRORS)
    errors.update(op.errors)
    for status, description in sorted(errors.items()):
        responses.setdefault(str(status), _problem_reply(schemas, status, description))
    doc["responses"] = responses
    # per-operation security: any one scheme suffices; [] marks the public endpoints
    doc["security"] = [{name: []} for name in SECURITY_SCHEMES] if op.authenticated else []
    return doc


def build_document(operations: Sequence[Operation], *, title: str, version: str) -> dict[str, Any]:
    schemas = _Schemas()
    paths: dict[str, dict[str, Any]] = {}
    for op in operations:
        item = paths.setdefault(op.path, {})
        method = op.method.lower()
        if method in item:
            raise ValueError(f"{op.method} {op.path} is described twice")
        item[method] = _operation(op, schemas)
    return {
        "openapi": OPENAPI_VERSION,
        "info": {"title": title, "version": version},
        "paths": paths,
        "components": {"schemas": schemas.components(), "securitySchemes": SECURITY_SCHEMES},
    }
