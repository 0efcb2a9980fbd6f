"""Discovery: /version, /api, /api/v1, /apis, /apis/{group}/{version} (legacy discovery documents).

kubectl 1.32 first asks /api and /apis for the aggregated form (apidiscovery.k8s.io/v2 APIGroupDiscoveryList)
and falls back to these per-group documents when the answer is a plain APIVersions / APIGroupList.
"""

from __future__ import annotations

import base64
import hashlib
import platform as _platform
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from .context import SimContext
from .resources import Registry, json_response


@dataclass(frozen=True)
class ExtraResource:
    """A resource served by a handler of its own (create-only reviews, subresources)."""

    group_version: str  # the discovery document it is listed in ("v1", "authentication.k8s.io/v1")
    name: str
    kind: str
    namespaced: bool
    verbs: tuple[str, ...] = ("create",)
    singular: str = ""
    # for a subresource whose body is of another group (serviceaccounts/token → authentication.k8s.io/v1)
    group: str | None = None
    version: str | None = None


EXTRA_RESOURCES: tuple[ExtraResource, ...] = (
    ExtraResource(
        "v1", "serviceaccounts/token", "TokenRequest", True, group="authentication.k8s.io", version="v1"
    ),
    ExtraResource("authentication.k8s.io/v1", "tokenreviews", "TokenReview", False, singular="tokenreview"),
    ExtraResource(
        "authentication.k8s.io/v1",
        "selfsubjectreviews",
        "SelfSubjectReview",
        False,
        singular="selfsubjectreview",
    ),
    ExtraResource(
        "authorization.k8s.io/v1",
        "selfsubjectaccessreviews",
        "SelfSubjectAccessReview",
        False,
        singular="selfsubjectaccessreview",
    ),
    ExtraResource(
        "authorization.k8s.io/v1",
        "subjectaccessreviews",
        "SubjectAccessReview",
        False,
        singular="subjectaccessreview",
    ),
    *(
        ExtraResource(
            "certificates.k8s.io/v1",
            f"certificatesigningrequests/{sub}",
            "CertificateSigningRequest",
            False,
            verbs=("get", "patch", "update"),
        )
        for sub in ("approval", "status")
    ),
    ExtraResource(
        "authorization.k8s.io/v1",
        "selfsubjectrulesreviews",
        "SelfSubjectRulesReview",
        False,
        singular="selfsubjectrulesreview",
    ),
)

# the order kube-apiserver lists its groups in (by priority); unknown groups go last
_GROUP_ORDER = (
    "",
    "authentication.k8s.io",
    "authorization.k8s.io",
    "certificates.k8s.io",
    "rbac.authorization.k8s.io",
    "coordination.k8s.io",
)


def _storage_version_hash(group_version: str, kind: str) -> str:
    # discovery.StorageVersionHash: first 8 bytes of sha256("<group>/<version>/<kind>"), base64
    digest = hashlib.sha256(f"{group_version}/{kind}".encode()).digest()
    return base64.b64encode(digest[:8]).decode()


class Discovery:
    def __init__(self, ctx: SimContext, registry: Registry) -> None:
        self.ctx = ctx
        self.registry = registry

    def group_versions(self) -> dict[str, list[dict[str, Any]]]:
        """group version ("v1", "rbac.authorization.k8s.io/v1") → its APIResource list."""
        out: dict[str, list[dict[str, Any]]] = {}
        for strategy in self.registry.all():
            rt = strategy.rtype
            resource: dict[str, Any] = {
                "name": rt.plural,
                "singularName": rt.singular or rt.kind.lower(),
                "namespaced": rt.namespaced,
                "kind": rt.kind,
                "verbs": sorted(rt.verbs),
            }
            if rt.short_names:
                resource["shortNames"] = list(rt.short_names)
            resource["storageVersionHash"] = _storage_version_hash(rt.api_version, rt.kind)
            out.setdefault(rt.api_version, []).append(resource)
        for extra in EXTRA_RESOURCES:
            entry: dict[str, Any] = {
                "name": extra.name,
                "singularName": extra.singular,
                "namespaced": extra.namespaced,
            }
            if extra.group is not None:
                entry["group"] = extra.group
                entry["version"] = extra.version
            entry["kind"] = extra.kind
            entry["verbs"] = list(extra.verbs)
            out.setdefault(extra.group_version, []).append(entry)
        for resources in out.values():
            resources.sort(key=lambda r: str(r["name"]))
        return out

    def groups(self) -> list[str]:
        names = {gv.split("/")[0] for gv in self.group_versions() if "/" in gv}
        return sorted(
            names, key=lambda g: (_GROUP_ORDER.index(g) if g in _GROUP_ORDER else len(_GROUP_ORDER), g)
        )

    # -- handlers -----------------------------------------------------------------------------------------
    async def version(self, _request: web.Request) -> web.Response:
        git_version = self.ctx.options.git_version
        major, minor = git_version.lstrip("v").split(".")[:2]
        return json_response(
            {
                "major": major,
                "minor": minor,
                "gitVersion": git_version,
                "gitCommit": "0000000000000000000000000000000000000000",
                "gitTreeState": "clean",
                "buildDate": "2024-12-11T00:00:00Z",
                "goVersion": "go1.23.4",
                "compiler": "gc",
                "platform": f"{_platform.system().lower()}/{_arch()}",
            }
        )

    async def api(self, request: web.Request) -> web.Response:
        host = request.host or ""
        return json_response(
            {
                "kind": "APIVersions",
                "versions": ["v1"],
                "serverAddressByClientCIDRs": [{"clientCIDR": "0.0.0.0/0", "serverAddress": host}],
            }
        )

    async def apis(self, _request: web.Request) -> web.Response:
        groups = []
        for name in self.groups():
            gv = {"groupVersion": f"{name}/v1", "version": "v1"}
            groups.append({"name": name, "versions": [gv], "preferredVersion": gv})
        return json_response({"kind": "APIGroupList", "apiVersion": "v1", "groups": groups})

    async def api_group(self, request: web.Request) -> web.Response:
        name = request.match_info["group"]
        if name not in self.groups():
            return _mux_not_found()
        gv = {"groupVersion": f"{name}/v1", "version": "v1"}
        return json_response(
            {"kind": "APIGroup", "apiVersion": "v1", "name": name, "versions": [gv], "preferredVersion": gv}
        )

    async def resource_list(self, request: web.Request) -> web.Response:
        group = request.match_info.get("group", "")
        version = request.match_info["version"]
        group_version = f"{group}/{version}" if group else version
        if group and group not in self.groups():
            return _mux_not_found()
        resources = self.group_versions().get(group_version)
        if resources is None:
            raise _not_found()
        return json_response(
            {
                "kind": "APIResourceList",
                "apiVersion": "v1",
                "groupVersion": group_version,
                "resources": resources,
            }
        )

    def routes(self) -> list[web.RouteDef]:
        return [
            web.get("/version", self.version),
            web.get("/version/", self.version),
            web.get("/api", self.api),
            web.get("/api/", self.api),
            # the aggregator's /apis handler answers every method
            web.route("*", "/apis", self.apis),
            web.route("*", "/apis/", self.apis),
            web.get("/api/{version}", self.resource_list),
            web.get("/api/{version}/", self.resource_list),
            web.get("/apis/{group}", self.api_group),
            web.get("/apis/{group}/", self.api_group),
            web.get("/apis/{group}/{version}", self.resource_list),
            web.get("/apis/{group}/{version}/", self.resource_list),
        ]


def _not_found() -> Exception:
    from .resources import not_found_path

    return not_found_path()


def _mux_not_found() -> web.Response:
    from .resources import mux_not_found

    return mux_not_found()


def _arch() -> str:
    machine = _platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64"}.get(machine, machine)
