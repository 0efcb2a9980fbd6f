"""The OpenAPI 3.1 document: shape, every $ref resolves, every operation documents its errors, and it
describes exactly the routes the application serves."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

from http_harness import FakeIssuer

from broker.callers import AuthenticatorChain
from broker.http import build_http_app
from broker.http.routes import openapi_document

HTTP_METHODS = {"get", "put", "post", "delete", "options", "head", "patch", "trace"}


def refs(node: Any) -> Iterator[str]:
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                assert isinstance(value, str)
                yield value
            else:
                yield from refs(value)
    elif isinstance(node, list):
        for item in node:
            yield from refs(item)


def resolve(doc: dict[str, Any], ref: str) -> Any:
    assert ref.startswith("#/"), ref
    node: Any = doc
    for part in ref[2:].split("/"):
        part = part.replace("~1", "/").replace("~0", "~")
        assert isinstance(node, dict) and part in node, f"unresolved {ref}"
        node = node[part]
    return node


def operations(doc: dict[str, Any]) -> Iterator[tuple[str, str, dict[str, Any]]]:
    for path, item in doc["paths"].items():
        for method, op in item.items():
            assert method in HTTP_METHODS, method
            yield path, method, op


def test_top_level_shape_is_openapi_3_1() -> None:
    doc = json.loads(json.dumps(openapi_document()))
    assert doc["openapi"] == "3.1.0"
    assert set(doc) <= {
        "openapi",
        "info",
        "jsonSchemaDialect",
        "servers",
        "paths",
        "webhooks",
        "components",
        "security",
        "tags",
        "externalDocs",
    }
    assert doc["info"]["title"] and doc["info"]["version"]
    assert all(path.startswith("/") for path in doc["paths"])
    assert set(doc["components"]) <= {
        "schemas",
        "responses",
        "parameters",
        "requestBodies",
        "headers",
        "securitySchemes",
    }
    schemes = doc["components"]["securitySchemes"]
    assert schemes["mutualTLS"]["type"] == "mutualTLS"
    assert schemes["apiKey"] == {"type": "apiKey", "in": "header", "name": "X-API-Key"}


def test_every_ref_resolves() -> None:
    doc = openapi_document()
    found = list(refs(doc))
    assert found
    for ref in found:
        target = resolve(doc, ref)
        assert isinstance(target, dict) and ("type" in target or "anyOf" in target or "properties" in target)
    assert "$defs" not in json.dumps(doc)


def test_every_operation_documents_its_responses() -> None:
    doc = openapi_document()
    ids = []
    for path, method, op in operations(doc):
        ids.append(op["operationId"])
        assert op["summary"]
        responses = op["responses"]
        assert any(code.startswith("2") for code in responses), (method, path)
        for code, response in responses.items():
            assert code.isdigit() and 100 <= int(code) <= 599
            assert response["description"]
            if int(code) >= 400 and not (path == "/readyz" and code == "503"):
                assert list(response["content"]) == ["application/problem+json"], (method, path, code)
                assert response["content"]["application/problem+json"]["schema"] == {
                    "$ref": "#/components/schemas/Problem"
                }
        assert "500" in responses
        if op["security"]:
            assert "WWW-Authenticate" in responses["401"]["headers"]
        for code in ("429", "503"):
            if code in responses:
                assert "Retry-After" in responses[code]["headers"]
    assert len(ids) == len(set(ids))


def test_token_operation() -> None:
    op = openapi_document()["paths"]["/v1/tokens"]["post"]
    assert op["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/TokenRequestBody"
    }
    assert {"201", "400", "401", "403", "413", "415", "422", "429", "502", "503", "500"} <= set(
        op["responses"]
    )
    created = op["responses"]["201"]["content"]
    assert set(created) == {"application/json", "application/yaml"}
    formats = next(p for p in op["parameters"] if p["name"] == "format")
    assert formats["schema"]["enum"] == ["json", "kubeconfig", "exec-credential"]
    schema = openapi_document()["components"]["schemas"]["TokenRequestBody"]
    assert schema["additionalProperties"] is False
    assert schema["required"] == ["role"]


def test_public_endpoints_have_no_security() -> None:
    doc = openapi_document()
    for path in ("/healthz", "/readyz", "/openapi.json"):
        assert doc["paths"][path]["get"]["security"] == []
        assert "401" not in doc["paths"][path]["get"]["responses"]


def test_document_matches_the_routes_served() -> None:
    app = build_http_app(authenticator=AuthenticatorChain([]), issuance=FakeIssuer(), max_body_bytes=1024)
    served = {
        (route.method.lower(), route.resource.canonical)
        for route in app.router.routes()
        if route.resource is not None and route.method != "HEAD"
    }
    documented = {(method, path) for path, method, _ in operations(openapi_document())}
    assert served == documented
