"""A minimal OpenAPI v3 surface: enough for kubectl to learn that the server validates fields itself.

`kubectl create|apply|replace -f` first asks /openapi/v3 whether the PATCH operation of the object's
group/version/kind takes the `fieldValidation` query parameter (kubectl pkg/resource query_param_verifier_v3);
when it does, kubectl leaves validation to the server instead of downloading schemas. The documents below
list exactly that: one path per resource with a PATCH operation tagged `x-kubernetes-group-version-kind`.
Schemas are not served.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from aiohttp import web

from .resources import Registry, json_response, not_found_path

_QUERY_PARAMS = ("dryRun", "fieldManager", "fieldValidation", "force", "pretty")


def _path_key(group: str, version: str) -> str:
    return f"apis/{group}/{version}" if group else f"api/{version}"


class OpenAPI:
    def __init__(self, registry: Registry) -> None:
        self.registry = registry

    def documents(self) -> dict[str, dict[str, Any]]:
        docs: dict[str, dict[str, Any]] = {}
        for strategy in self.registry.all():
            rt = strategy.rtype
            key = _path_key(rt.group, rt.version)
            doc = docs.setdefault(
                key, {"openapi": "3.0.0", "info": {"title": "Kubernetes", "version": "v1.32.0"}, "paths": {}}
            )
            scope = "/namespaces/{namespace}" if rt.namespaced else ""
            path = f"/{key}{scope}/{rt.plural}/{{name}}"
            gvk = {"group": rt.group, "version": rt.version, "kind": rt.kind}
            operation = {
                "operationId": f"patch{rt.kind}",
                "parameters": [
                    {"name": p, "in": "query", "schema": {"type": "string"}} for p in _QUERY_PARAMS
                ],
                "x-kubernetes-action": "patch",
                "x-kubernetes-group-version-kind": gvk,
                "responses": {"200": {"description": "OK"}},
            }
            doc["paths"][path] = {"patch": operation}
        return docs

    async def root(self, _request: web.Request) -> web.Response:
        paths = {}
        for key, doc in self.documents().items():
            digest = hashlib.sha512(json.dumps(doc, sort_keys=True).encode()).hexdigest()[:128]
            paths[key] = {"serverRelativeURL": f"/openapi/v3/{key}?hash={digest.upper()}"}
        return json_response({"paths": paths})

    async def group_version(self, request: web.Request) -> web.Response:
        doc = self.documents().get(request.match_info["path"])
        if doc is None:
            raise not_found_path()
        return json_response(doc)

    def routes(self) -> list[web.RouteDef]:
        return [web.get("/openapi/v3", self.root), web.get("/openapi/v3/{path:.+}", self.group_version)]
