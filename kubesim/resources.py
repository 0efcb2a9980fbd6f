"""Generic REST handling of stored resources, as k8s.io/apiserver's generic registry and endpoint handlers do it:
get, list, create, update, patch, delete, deletecollection, driven by one `Strategy` per resource type.

Per-type behaviour (defaulting, validation, admission, delete side effects, table columns) lives in the
group modules (core_v1, rbac_v1, coordination_v1); this module only orders the steps.
"""

from __future__ import annotations

import base64
import binascii
import json
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import yaml
from aiohttp import web

from . import deletion, negotiation, protobuf, status, tables, validation
from . import patch as patching
from .context import SimContext, UserInfo
from .request_info import RequestInfo
from .state import Obj, ResourceType, Store, now_rfc3339
from .status import ApiError, Cause, bad_request
from .watch import EventLog, serve_watch

# (ctx, new object, old object or None on create) → None; may raise ApiError
Hook = Callable[[SimContext, Obj, Obj | None], None]
Validator = Callable[[SimContext, Obj, Obj | None], list[Cause]]
FieldGetter = Callable[[Obj], str]


@dataclass(frozen=True)
class Requester:
    """Who asks for a write and with which request, as a registry's REST storage reads them from its context."""

    user: UserInfo
    info: RequestInfo


# (ctx, requester, new object, old object or None on create) → None; may raise ApiError
RequesterHook = Callable[[SimContext, Requester, Obj, Obj | None], None]


def _no_hook(_ctx: SimContext, _new: Obj, _old: Obj | None) -> None:
    return None


def _no_causes(_ctx: SimContext, _new: Obj, _old: Obj | None) -> list[Cause]:
    return []


def _no_requester_hook(_ctx: SimContext, _requester: Requester, _new: Obj, _old: Obj | None) -> None:
    return None


def _no_delete_hook(_ctx: SimContext, _obj: Obj) -> None:
    return None


@dataclass(frozen=True)
class Subresource:
    """A subresource that updates a part of the stored object, with the registry strategy of its own."""

    # PrepareForUpdate: what of the sent object this subresource may change; the rest comes from the old one
    prepare: Hook
    # the update validation of this subresource (object meta is validated generically)
    validate: Validator
    # the validating admission of its updates
    admit: RequesterHook = _no_requester_hook


@dataclass(frozen=True)
class Strategy:
    rtype: ResourceType
    # the ValidateNameFunc of the type (DNS label, DNS subdomain, path segment)
    name_check: validation.NameCheck = validation.dns1123_subdomain
    # PrepareForCreate/PrepareForUpdate: normalise and default; may raise a 400 for undecodable fields
    prepare: Hook = _no_hook
    # the type's own storage step that reads the requester, before the generic store validates (the rbac
    # registries' escalation checks; the CSR strategy stamping spec.username)
    requester: RequesterHook = _no_requester_hook
    validate: Validator = _no_causes
    # validating admission, after validation (namespace lifecycle is generic); may raise ApiError
    admit: RequesterHook = _no_requester_hook
    # called before the store removes an object (may refuse) and after (cascades)
    before_delete: Callable[[SimContext, Obj], None] = _no_delete_hook
    after_delete: Callable[[SimContext, Obj], None] = _no_delete_hook
    # generic registry ReturnDeletedObject (or graceful deletion): DELETE answers the object, else a Status
    delete_returns_object: bool = False
    allow_create_on_update: bool = False
    # AllowUnconditionalUpdate: may a PUT omit metadata.resourceVersion (false for Leases)
    unconditional_update: bool = True
    columns: tuple[tables.Column, ...] = tables.DEFAULT_COLUMNS
    # fieldSelector labels beyond metadata.name / metadata.namespace
    field_labels: dict[str, FieldGetter] = field(default_factory=dict)
    # subresources served elsewhere (e.g. serviceaccounts/token): other verbs on them are 405, not 404
    external_subresources: tuple[str, ...] = ()
    # subresources served here (get, update, patch of a part of the object: status, approval)
    subresources: dict[str, Subresource] = field(default_factory=dict)

    @property
    def kind(self) -> str:
        return self.rtype.kind


class Registry:
    """Every served resource type, by (group, version, plural)."""

    def __init__(self) -> None:
        self._by_key: dict[tuple[str, str, str], Strategy] = {}

    def add(self, strategy: Strategy) -> None:
        rt = strategy.rtype
        self._by_key[(rt.group, rt.version, rt.plural)] = strategy

    def find(self, group: str, version: str, plural: str) -> Strategy | None:
        return self._by_key.get((group, version, plural))

    def all(self) -> list[Strategy]:
        return list(self._by_key.values())

    def namespaced(self) -> list[Strategy]:
        return [s for s in self._by_key.values() if s.rtype.namespaced]


# -- wire helpers ---------------------------------------------------------------------------------------------
def json_response(body: Any, status_code: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    return web.Response(
        body=json.dumps(body, separators=(",", ":")).encode(),
        status=status_code,
        content_type="application/json",
        headers=headers,
    )


def error_response(err: ApiError) -> web.Response:
    return json_response(err.to_status(), err.code, err.headers or None)


def mux_not_found() -> web.Response:
    # a path outside the API (or an API group nobody serves) falls through the aggregator to Go's http.NotFound:
    # plain text, not a Status
    return web.Response(
        status=404,
        text="404 page not found\n",
        content_type="text/plain",
        charset="utf-8",
        headers={"X-Content-Type-Options": "nosniff"},
    )


def not_found_path() -> ApiError:
    # what the mux answers for a path no handler serves
    return ApiError(404, "NotFound", "the server could not find the requested resource", {})


def decode_json_or_yaml(raw: bytes, content_type: str) -> Any:
    """Parse a request body (JSON, YAML or Kubernetes protobuf); malformed → 400 BadRequest."""
    if content_type == protobuf.CONTENT_TYPE:
        try:
            return protobuf.decode(raw)
        except (protobuf.ProtobufError, UnicodeDecodeError) as exc:
            raise bad_request(f"couldn't get version/kind; protobuf parse error: {exc}") from None
    if content_type in ("application/yaml", "application/x-yaml", "text/yaml"):
        try:
            return yaml.safe_load(raw.decode("utf-8")) if raw else None
        except (yaml.YAMLError, UnicodeDecodeError) as exc:
            raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if content_type not in ("application/json", "", "application/octet-stream", "text/plain"):
        raise status.unsupported_media_type(content_type)
    try:
        return json.loads(raw) if raw else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None


async def read_object(request: web.Request, rtype: ResourceType) -> Obj:
    """Decode a create/update body into an object of `rtype` (defaulting kind/apiVersion from the URL)."""
    raw = await request.read()
    body = decode_json_or_yaml(raw, request.content_type if raw else "")
    if not isinstance(body, dict):
        got = "array" if isinstance(body, list) else type(body).__name__
        raise bad_request(
            f"couldn't get version/kind; json parse error: json: cannot unmarshal {got} into Go value of type "
            'struct { APIVersion string "json:\\"apiVersion,omitempty\\""; Kind string "json:\\"kind,omitempty\\"" }'
        )
    kind, api_version = body.get("kind"), body.get("apiVersion")
    if not isinstance(kind, str | None) or not isinstance(api_version, str | None):
        raise bad_request(
            "couldn't get version/kind; json parse error: json: cannot unmarshal into Go struct field"
        )
    version = (api_version or rtype.api_version).rsplit("/", 1)[-1]
    if kind and kind != rtype.kind:
        # handlers.transformDecodeError
        raise bad_request(
            f'{kind} in version "{version}" cannot be handled as a {rtype.kind}: '
            f'no kind "{kind}" is registered for version "{api_version or rtype.api_version}"'
        )
    if api_version and api_version != rtype.api_version:
        raise bad_request(
            f"the API version in the data ({api_version}) does not match the expected API version ({rtype.api_version})"
        )
    meta = body.setdefault("metadata", {})
    if meta is None:
        body["metadata"] = meta = {}
    if not isinstance(meta, dict):
        raise cannot_handle(rtype, "metadata", "v1.ObjectMeta", meta)
    for key in ("labels", "annotations"):
        value = meta.get(key)
        if value is not None and (
            not isinstance(value, dict) or not all(isinstance(v, str) for v in value.values())
        ):
            raise cannot_handle(rtype, f"metadata.{key}", "map[string]string", value)
    for key in ("name", "generateName", "namespace", "resourceVersion", "uid"):
        if meta.get(key) is not None and not isinstance(meta[key], str):
            raise cannot_handle(rtype, f"metadata.{key}", "string", meta[key])
    finalizers = meta.get("finalizers")
    if finalizers is not None and (
        not isinstance(finalizers, list) or not all(isinstance(f, str) for f in finalizers)
    ):
        raise cannot_handle(rtype, "metadata.finalizers", "[]string", finalizers)
    refs = meta.get("ownerReferences")
    if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)):
        raise cannot_handle(rtype, "metadata.ownerReferences", "[]v1.OwnerReference", refs)
    body["kind"], body["apiVersion"] = rtype.kind, rtype.api_version
    return body


def cannot_handle(rtype: ResourceType, path: str, go_type: str, value: Any) -> ApiError:
    """400 for a field of the wrong JSON type: the real server fails decoding, before validation."""
    got = {dict: "object", list: "array", str: "string", bool: "bool"}.get(type(value), "number")
    return bad_request(
        f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: json: cannot unmarshal '
        f"{got} into Go struct field {rtype.kind}.{path} of type {go_type}"
    )


def decode_bytes(rtype: ResourceType, value: Any) -> bytes:
    """A []byte field: base64 in JSON; anything else is a decode error (400)."""
    if not isinstance(value, str):
        raise cannot_handle(rtype, "data", "[]uint8", value)
    try:
        return base64.b64decode(value, validate=True)
    except (binascii.Error, ValueError):
        raise bad_request(
            f'{rtype.kind} in version "{rtype.version}" cannot be handled as a {rtype.kind}: illegal base64 data'
        ) from None


def _dry_run(request: web.Request) -> bool:
    values = request.query.getall("dryRun", [])
    for value in values:
        if value != "All":
            raise bad_request(f'dryRun: Unsupported value: "{value}": supported values: "All"')
    return bool(values)


# -- the handler --------------------------------------------------------------------------------------------
class ResourceHandler:
    """Serves every registered resource type behind one catch-all route."""

    def __init__(
        self, ctx: SimContext, registry: Registry, namespaces: ResourceType, events: EventLog
    ) -> None:
        self.ctx = ctx
        self.registry = registry
        self.namespaces = namespaces
        self.events = events

    @property
    def store(self) -> Store:
        return self.ctx.store

    async def handle(self, request: web.Request) -> web.StreamResponse:
        info: RequestInfo = request["request_info"]
        if not info.is_resource_request:
            raise not_found_path()
        strategy = self.registry.find(info.api_group, info.api_version, info.resource)
        if strategy is None or info.extra_parts:
            raise not_found_path()
        rtype = strategy.rtype
        is_ns_resource = rtype == self.namespaces
        if not rtype.namespaced and info.namespace and not is_ns_resource:
            raise not_found_path()
        if info.subresource:
            if info.subresource in strategy.subresources and info.name:
                return await self._subresource(request, strategy, strategy.subresources[info.subresource])
            if info.subresource in strategy.external_subresources and info.name:
                raise status.method_not_allowed()
            raise not_found_path()
        namespace = None if not rtype.namespaced else (info.namespace or None)
        verb = info.verb
        negotiation.negotiate(request.headers.get("Accept", ""), negotiation.resource_types(verb))
        if rtype.namespaced and namespace is None and verb not in ("list", "watch"):
            # the all-namespaces path only serves list and watch
            if info.name:
                raise not_found_path()
            raise status.method_not_allowed()
        path_name = _path_name(request, info)
        if verb == "get":
            return self._respond(request, strategy, self.store.get(rtype, namespace, path_name))
        if verb == "watch":
            return await serve_watch(request, self, strategy, namespace, path_name)
        if verb == "list":
            return self._list(request, strategy, namespace)
        if verb == "create":
            if path_name:
                raise status.method_not_allowed()
            return await self._create(request, strategy, namespace)
        if verb in ("update", "patch", "delete") and not path_name:
            raise status.method_not_allowed()
        if verb == "update":
            return await self._update(request, strategy, namespace, path_name)
        if verb == "patch":
            return await self._patch(request, strategy, namespace, path_name)
        if verb == "delete":
            return await self._delete(request, strategy, namespace, path_name)
        if verb == "deletecollection":
            return await self._delete_collection(request, strategy, namespace)
        raise status.method_not_allowed()

    # -- reads ------------------------------------------------------------------------------------------
    def _respond(self, request: web.Request, strategy: Strategy, obj: Obj, code: int = 200) -> web.Response:
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "Metadata")
            rv = (obj.get("metadata") or {}).get("resourceVersion", "")
            return json_response(tables.table(strategy.columns, [obj], include, rv), code)
        return json_response(obj, code)

    def select(self, request: web.Request, strategy: Strategy, namespace: str | None) -> list[Obj]:
        items = self.store.list(strategy.rtype, namespace, request.query.get("labelSelector"))
        return [o for o in items if self._field_match(strategy, request.query.get("fieldSelector", ""), o)]

    def _field_match(self, strategy: Strategy, selector: str, obj: Obj) -> bool:
        return field_match(strategy, selector, obj)

    def _list(self, request: web.Request, strategy: Strategy, namespace: str | None) -> web.Response:
        items = self.select(request, strategy, namespace)
        rv = str(self.store.revision)
        items, cont, remaining = _paginate(
            items, request.query.get("limit"), request.query.get("continue"), rv
        )
        if tables.wants_table(request.headers.get("Accept", "")):
            include = request.query.get("includeObject", "Metadata")
            return json_response(tables.table(strategy.columns, items, include, rv, cont))
        meta: Obj = {"resourceVersion": rv}
        if cont:
            meta["continue"] = cont
            meta["remainingItemCount"] = remaining
        rtype = strategy.rtype
        # items of a typed list carry no kind/apiVersion on the wire
        for item in items:
            item.pop("kind", None)
            item.pop("apiVersion", None)
        return json_response(
            {"kind": f"{rtype.kind}List", "apiVersion": rtype.api_version, "metadata": meta, "items": items}
        )

    # -- writes -----------------------------------------------------------------------------------------
    def _require_namespace(self, namespace: str | None) -> None:
        # NamespaceLifecycle admission: no objects in a namespace that does not exist
        if namespace is not None and self.store.try_get(self.namespaces, None, namespace) is None:
            raise status.not_found(self.namespaces.plural, namespace)

    def _check_namespace(self, obj: Obj, namespace: str | None) -> None:
        # rest.EnsureObjectNamespaceMatchesRequestNamespace
        meta = obj["metadata"]
        given = meta.get("namespace") or ""
        if namespace is None:
            meta.pop("namespace", None)
        elif not given:
            meta["namespace"] = namespace
        elif given != namespace:
            raise bad_request(
                "the namespace of the provided object does not match the namespace sent on the request"
            )

    def _validate(
        self, strategy: Strategy, obj: Obj, old: Obj | None, validate: Validator | None = None
    ) -> None:
        rtype = strategy.rtype
        causes = validation.validate_object_meta(obj["metadata"], rtype.namespaced, strategy.name_check)
        if old is not None:
            # rest.BeforeUpdate validates the common metadata, then the type's update validation does it again:
            # the causes repeat (the message lists each once)
            update = validation.validate_meta_update(obj, old)
            causes = causes + update + update + causes
        causes += (validate or strategy.validate)(self.ctx, obj, old)
        name = obj["metadata"].get("name") or obj["metadata"].get("generateName") or ""
        validation.raise_if(causes, rtype.kind, name, rtype.group)

    async def _create(self, request: web.Request, strategy: Strategy, namespace: str | None) -> web.Response:
        rtype = strategy.rtype
        dry_run = _dry_run(request)
        obj = await read_object(request, rtype)
        self._check_namespace(obj, namespace)
        self._require_namespace(namespace)
        meta = obj["metadata"]
        if meta.get("resourceVersion"):
            raise bad_request("resourceVersion should not be set on objects to be created")
        for key in (
            "uid",
            "creationTimestamp",
            "deletionTimestamp",
            "deletionGracePeriodSeconds",
            "managedFields",
        ):
            meta.pop(key, None)
        strategy.prepare(self.ctx, obj, None)
        strategy.requester(self.ctx, requester_of(request), obj, None)
        self._validate(strategy, obj, None)
        strategy.admit(self.ctx, requester_of(request), obj, None)
        if dry_run:
            return json_response(self._dry_run_created(strategy, obj, namespace), 201)
        created = self.store.create(rtype, namespace, obj)
        return json_response(created, 201)

    def _dry_run_created(self, strategy: Strategy, obj: Obj, namespace: str | None) -> Obj:
        meta = obj["metadata"]
        name = meta.get("name") or (meta.get("generateName", "") + uuid.uuid4().hex[:5])
        if self.store.try_get(strategy.rtype, namespace, name) is not None:
            raise status.already_exists(strategy.rtype.plural, name, strategy.rtype.group)
        meta.update(name=name, uid=str(uuid.uuid4()), creationTimestamp=now_rfc3339())
        return obj

    async def _update(
        self, request: web.Request, strategy: Strategy, namespace: str | None, name: str
    ) -> web.Response:
        rtype = strategy.rtype
        dry_run = _dry_run(request)
        obj = await read_object(request, rtype)
        if rtype == self.namespaces:
            obj["metadata"].pop("namespace", None)
        else:
            self._check_namespace(obj, namespace)
        body_name = obj["metadata"].get("name") or ""
        if body_name != name:
            raise bad_request(
                f"the name of the object ({body_name}) does not match the name on the URL ({name})"
            )
        current = self.store.try_get(rtype, namespace, name)
        if current is None:
            if not strategy.allow_create_on_update:
                raise status.not_found(rtype.plural, name, rtype.group)
            self._require_namespace(namespace)
            obj["metadata"].pop("resourceVersion", None)
            strategy.prepare(self.ctx, obj, None)
            strategy.requester(self.ctx, requester_of(request), obj, None)
            self._validate(strategy, obj, None)
            strategy.admit(self.ctx, requester_of(request), obj, None)
            if dry_run:
                return json_response(self._dry_run_created(strategy, obj, namespace), 201)
            return json_response(self.store.create(rtype, namespace, obj), 201)
        return self._store_update(request, strategy, namespace, obj, current, dry_run)

    def _store_update(
        self,
        request: web.Request,
        strategy: Strategy,
        namespace: str | None,
        obj: Obj,
        current: Obj,
        dry_run: bool,
        sub: Subresource | None = None,
    ) -> web.Response:
        rtype = strategy.rtype
        meta = obj["metadata"]
        asked_rv = meta.get("resourceVersion")
        if not asked_rv and not strategy.unconditional_update:
            # generic registry Store.Update: the qualified resource stands where the kind would
            cause = validation.invalid_cause("metadata.resourceVersion", 0, "must be specified for an update")
            raise status.invalid(rtype.plural, current["metadata"]["name"], [cause], rtype.group)
        if asked_rv and asked_rv != current["metadata"]["resourceVersion"]:
            raise status.conflict(rtype.plural, current["metadata"]["name"], rtype.group)
        for key in ("uid", "creationTimestamp", "deletionTimestamp", "deletionGracePeriodSeconds"):
            if key in current["metadata"]:
                meta[key] = current["metadata"][key]
            else:
                meta.pop(key, None)
        requester = requester_of(request)
        if sub is None:
            strategy.prepare(self.ctx, obj, current)
            strategy.requester(self.ctx, requester, obj, current)
            self._validate(strategy, obj, current)
            strategy.admit(self.ctx, requester, obj, current)
        else:
            sub.prepare(self.ctx, obj, current)
            self._validate(strategy, obj, current, sub.validate)
            sub.admit(self.ctx, requester, obj, current)
        meta["resourceVersion"] = current["metadata"]["resourceVersion"]
        if obj == current or dry_run:
            # an update that changes nothing is not written and keeps its resourceVersion
            return json_response(obj if dry_run else current)
        return json_response(self.store.update(rtype, namespace, obj))

    async def _subresource(self, request: web.Request, strategy: Strategy, sub: Subresource) -> web.Response:
        """get, update (PUT) and patch of a subresource; the object read and written is the whole one."""
        info: RequestInfo = request["request_info"]
        rtype = strategy.rtype
        namespace = info.namespace or None if rtype.namespaced else None
        negotiation.negotiate(request.headers.get("Accept", ""), negotiation.resource_types(info.verb))
        current = self.store.get(rtype, namespace, info.name)
        if info.verb == "get":
            return self._respond(request, strategy, current)
        if info.verb == "update":
            obj = await read_object(request, rtype)
            body_name = obj["metadata"].get("name") or ""
            if body_name != info.name:
                raise bad_request(
                    f"the name of the object ({body_name}) does not match the name on the URL ({info.name})"
                )
            self._check_namespace(obj, namespace)
        elif info.verb == "patch":
            obj = patching.apply(request.content_type, current, await request.read())
            if not isinstance(obj.get("metadata"), dict):
                raise bad_request("metadata must be an object")
            obj["kind"], obj["apiVersion"] = rtype.kind, rtype.api_version
        else:
            raise status.method_not_allowed()
        return self._store_update(request, strategy, namespace, obj, current, _dry_run(request), sub)

    async def _patch(
        self, request: web.Request, strategy: Strategy, namespace: str | None, name: str
    ) -> web.Response:
        rtype = strategy.rtype
        dry_run = _dry_run(request)
        raw = await request.read()
        current = self.store.get(rtype, namespace, name)
        patched = patching.apply(request.content_type, current, raw)
        meta = patched.get("metadata")
        if not isinstance(meta, dict):
            raise bad_request("metadata must be an object")
        patched["kind"], patched["apiVersion"] = rtype.kind, rtype.api_version
        if rtype.namespaced:
            meta.setdefault("namespace", namespace)
        return self._store_update(request, strategy, namespace, patched, current, dry_run)

    async def _delete_options(self, request: web.Request) -> Obj:
        raw = await request.read()
        if not raw.strip():
            return {}
        body = decode_json_or_yaml(raw, request.content_type)
        if body is None:
            return {}
        if not isinstance(body, dict):
            raise bad_request("DeleteOptions must be a JSON object")
        return body

    async def _delete(
        self, request: web.Request, strategy: Strategy, namespace: str | None, name: str
    ) -> web.Response:
        rtype = strategy.rtype
        options = await self._delete_options(request)
        propagation = deletion.Propagation.of(options)
        dry_run = _dry_run(request) or options.get("dryRun") == ["All"]
        current = self.store.get(rtype, namespace, name)
        preconditions = options.get("preconditions") or {}
        if not isinstance(preconditions, dict):
            raise bad_request("preconditions must be an object")
        _check_delete_preconditions(rtype, current, preconditions)
        strategy.before_delete(self.ctx, current)
        if rtype == self.namespaces:
            # namespaces go at once with their contents (a documented simplification)
            if not dry_run:
                current = self.store.delete(rtype, namespace, name)
                strategy.after_delete(self.ctx, current)
            return json_response(self._deleted_body(strategy, current))
        deleted = deletion.delete(self.store, rtype, current, propagation, dry_run)
        if not deleted.gone:
            # still there for its finalizers: the object itself, 202 only when orphanDependents=false was asked
            return json_response(deleted.obj, 202 if propagation.orphan_dependents is False else 200)
        if not dry_run:
            strategy.after_delete(self.ctx, deleted.obj)
        return json_response(self._deleted_body(strategy, deleted.obj))

    def _deleted_body(self, strategy: Strategy, obj: Obj) -> Obj:
        if strategy.delete_returns_object:
            return obj
        rtype = strategy.rtype
        details: Obj = {"name": obj["metadata"]["name"]}
        if rtype.group:
            details["group"] = rtype.group
        details["kind"] = rtype.plural
        details["uid"] = obj["metadata"]["uid"]
        return {"kind": "Status", "apiVersion": "v1", "metadata": {}, "status": "Success", "details": details}

    async def _delete_collection(
        self, request: web.Request, strategy: Strategy, namespace: str | None
    ) -> web.Response:
        rtype = strategy.rtype
        options = await self._delete_options(request)
        propagation = deletion.Propagation.of(options)
        dry_run = _dry_run(request) or options.get("dryRun") == ["All"]
        deleted = []
        for obj in self.select(request, strategy, namespace):
            strategy.before_delete(self.ctx, obj)
            if rtype == self.namespaces:
                if not dry_run:
                    obj = self.store.delete(rtype, None, obj["metadata"]["name"])
                    strategy.after_delete(self.ctx, obj)
            else:
                outcome = deletion.delete(self.store, rtype, obj, propagation, dry_run)
                obj = outcome.obj
                if outcome.gone and not dry_run:
                    strategy.after_delete(self.ctx, obj)
            obj.pop("kind", None)
            obj.pop("apiVersion", None)
            deleted.append(obj)
        return json_response(
            {
                "kind": f"{rtype.kind}List",
                "apiVersion": rtype.api_version,
                "metadata": {"resourceVersion": str(self.store.revision)},
                "items": deleted,
            }
        )


def requester_of(request: web.Request) -> Requester:
    user: UserInfo = request["user"]
    info: RequestInfo = request["request_info"]
    return Requester(user, info)


def _path_name(request: web.Request, info: RequestInfo) -> str:
    # RequestInfo.name also carries a list's fieldSelector metadata.name; only the URL path names an object
    if info.verb == "list":
        return ""
    if info.verb == "watch" and not _path_has_name([p for p in request.path.split("/") if p], info):
        return ""
    return info.name


def _path_has_name(parts: list[str], info: RequestInfo) -> bool:
    if info.resource not in parts:
        return False
    idx = len(parts) - 1 - parts[::-1].index(info.resource)
    return idx + 1 < len(parts)


_FIELD_GETTERS: dict[str, FieldGetter] = {
    "metadata.name": lambda o: str(o.get("metadata", {}).get("name", "")),
    "metadata.namespace": lambda o: str(o.get("metadata", {}).get("namespace", "")),
}


def _paginate(items: list[Obj], limit: str | None, cont: str | None, rv: str) -> tuple[list[Obj], str, int]:
    """limit/continue chunking; the continue token is opaque to clients (here: base64 JSON of the next key)."""
    start = 0
    if cont:
        try:
            token = json.loads(base64.urlsafe_b64decode(cont.encode()))
            after = (token["ns"], token["name"])
        except (ValueError, KeyError, TypeError, binascii.Error):
            raise bad_request("continue key is not valid: illegal base64 data") from None
        keys = [(o["metadata"].get("namespace", ""), o["metadata"]["name"]) for o in items]
        start = next((i for i, k in enumerate(keys) if k > after), len(items))
    try:
        n = int(limit) if limit else 0
    except ValueError:
        raise bad_request(f'limit: Invalid value: "{limit}": must be an integer') from None
    if n <= 0 or start + n >= len(items):
        return items[start:], "", 0
    page = items[start : start + n]
    last = page[-1]["metadata"]
    token = {"ns": last.get("namespace", ""), "name": last["name"], "rv": rv}
    encoded = base64.urlsafe_b64encode(json.dumps(token).encode()).decode()
    return page, encoded, len(items) - start - n


def deep(obj: Obj, *path: str) -> Any:
    """obj[path...] or None."""
    cur: Any = obj
    for key in path:
        if not isinstance(cur, dict):
            return None
        cur = cur.get(key)
    return cur


def field_match(strategy: Strategy, selector: str, obj: Obj) -> bool:
    """fieldSelector: metadata.name, metadata.namespace and the type's own field labels; =, ==, !=."""
    for term in (t.strip() for t in selector.split(",") if t.strip()):
        if "!=" in term:
            key, value, negate = *term.split("!=", 1), True
        elif "==" in term:
            key, value, negate = *term.split("==", 1), False
        elif "=" in term:
            key, value, negate = *term.split("=", 1), False
        else:
            raise bad_request(f"invalid selector: '{selector}'; can't understand '{term}'")
        key, value = key.strip(), value.strip()
        getter = _FIELD_GETTERS.get(key) or strategy.field_labels.get(key)
        if getter is None:
            raise bad_request(f"field label not supported: {key}")
        if (getter(obj) == value) == negate:
            return False
    return True


def _check_delete_preconditions(rtype: ResourceType, current: Obj, preconditions: Obj) -> None:
    # rest.BeforeDelete checks these before storage does, naming the kind (not the resource) in the message
    meta = current["metadata"]
    uid, rv = preconditions.get("uid"), preconditions.get("resourceVersion")
    if uid and uid != meta["uid"]:
        raise status.conflict(
            rtype.kind,
            meta["name"],
            rtype.group,
            f"the UID in the precondition ({uid}) does not match the UID in record ({meta['uid']}). "
            "The object might have been deleted and then recreated",
        )
    if rv and rv != meta["resourceVersion"]:
        raise status.conflict(
            rtype.kind,
            meta["name"],
            rtype.group,
            f"the ResourceVersion in the precondition ({rv}) does not match the ResourceVersion in record "
            f"({meta['resourceVersion']}). The object might have been modified",
        )
