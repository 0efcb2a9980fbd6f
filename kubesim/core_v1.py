"""core/v1: namespaces, serviceaccounts, secrets, pods, nodes — strategies as pkg/registry/core/* define them
(defaulting, validation from pkg/apis/core/validation, admission the real plugins do)."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections.abc import Callable
from datetime import UTC, datetime

from .context import SimContext
from .kinds import NAMESPACES, NODES, PODS, SECRETS, SERVICEACCOUNTS
from .resources import Requester, Strategy, cannot_handle, decode_bytes, deep
from .state import Obj, ResourceType, Store
from .status import ApiError, Cause
from .tables import AGE, NAME, Column
from .validation import (
    config_key,
    dns1123_label,
    dns1123_subdomain,
    forbidden_cause,
    invalid_cause,
    required_cause,
)

SA_NAME_ANNOTATION = "kubernetes.io/service-account.name"
SA_TOKEN_TYPE = "kubernetes.io/service-account-token"
# NamespaceLifecycle admission refuses to delete these
IMMORTAL_NAMESPACES = ("default", "kube-system", "kube-public")
MAX_SECRET_SIZE = 1024 * 1024


# -- namespaces ---------------------------------------------------------------------------------------------
def _prepare_namespace(_ctx: SimContext | None, obj: Obj, old: Obj | None) -> None:
    meta = obj["metadata"]
    # the NamespaceDefaultLabelName feature: every namespace carries its own name as a label
    labels = meta.get("labels") or {}
    labels["kubernetes.io/metadata.name"] = meta.get("name") or ""
    meta["labels"] = labels
    spec = obj.get("spec") or {}
    if not isinstance(spec, dict):
        raise cannot_handle(NAMESPACES, "spec", "v1.NamespaceSpec", spec)
    spec.setdefault("finalizers", ["kubernetes"])
    obj["spec"] = spec
    # status belongs to the server (status subresource)
    obj["status"] = (old or {}).get("status") or {"phase": "Active"}


def _refuse_immortal(_ctx: SimContext, obj: Obj) -> None:
    name = obj["metadata"]["name"]
    if name in IMMORTAL_NAMESPACES:
        raise ApiError(
            403,
            "Forbidden",
            f'namespaces "{name}" is forbidden: this namespace may not be deleted',
            {"name": name, "kind": "namespaces"},
        )


def namespace_strategy(namespaced_types: Callable[[], list[ResourceType]]) -> Strategy:
    def purge(ctx: SimContext, obj: Obj) -> None:
        # Simplification: a real namespace goes Terminating while the namespace controller deletes its
        # contents, then disappears. Here the contents and the namespace go at once; the DELETE answer
        # still shows what a real server returns (the namespace with deletionTimestamp, phase Terminating).
        name = obj["metadata"]["name"]
        for rtype in namespaced_types():
            for item in ctx.store.list(rtype, name):
                with contextlib.suppress(ApiError):
                    ctx.store.delete(rtype, name, item["metadata"]["name"])
        obj["metadata"]["deletionTimestamp"] = datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        obj["status"] = {"phase": "Terminating"}

    return Strategy(
        NAMESPACES,
        name_check=dns1123_label,
        prepare=_prepare_namespace,
        before_delete=_refuse_immortal,
        after_delete=purge,
        delete_returns_object=True,
        columns=(NAME, Column("Status", lambda o: deep(o, "status", "phase") or ""), AGE),
        field_labels={"status.phase": lambda o: str(deep(o, "status", "phase") or "")},
    )


# -- serviceaccounts ----------------------------------------------------------------------------------------
def _prepare_serviceaccount(_ctx: SimContext, obj: Obj, _old: Obj | None) -> None:
    for key in ("secrets", "imagePullSecrets"):
        refs = obj.get(key)
        if refs is not None and (not isinstance(refs, list) or not all(isinstance(r, dict) for r in refs)):
            raise cannot_handle(SERVICEACCOUNTS, key, "[]v1.ObjectReference", refs)
    auto = obj.get("automountServiceAccountToken")
    if auto is not None and not isinstance(auto, bool):
        raise cannot_handle(SERVICEACCOUNTS, "automountServiceAccountToken", "bool", auto)


SERVICEACCOUNT_STRATEGY = Strategy(
    SERVICEACCOUNTS,
    prepare=_prepare_serviceaccount,
    columns=(NAME, Column("Secrets", lambda o: len(o.get("secrets") or []), type="integer"), AGE),
    external_subresources=("token",),
)


# -- secrets ------------------------------------------------------------------------------------------------
def _prepare_secret(_ctx: SimContext, obj: Obj, _old: Obj | None) -> None:
    data = obj.get("data")
    if data is None:
        data = {}
    if not isinstance(data, dict):
        raise cannot_handle(SECRETS, "data", "map[string][]uint8", data)
    for value in data.values():
        decode_bytes(SECRETS, value)
    string_data = obj.pop("stringData", None)
    if string_data is not None:
        if not isinstance(string_data, dict) or not all(isinstance(v, str) for v in string_data.values()):
            raise cannot_handle(SECRETS, "stringData", "map[string]string", string_data)
        # v1 → internal conversion: stringData entries overwrite data entries of the same key
        for key, value in string_data.items():
            data[key] = base64.b64encode(value.encode()).decode()
    if data:
        obj["data"] = data
    else:
        obj.pop("data", None)
    kind = obj.get("type")
    if kind is not None and not isinstance(kind, str):
        raise cannot_handle(SECRETS, "type", "v1.SecretType", kind)
    obj["type"] = kind or "Opaque"
    immutable = obj.get("immutable")
    if immutable is not None and not isinstance(immutable, bool):
        raise cannot_handle(SECRETS, "immutable", "bool", immutable)


def _validate_secret(_ctx: SimContext, obj: Obj, old: Obj | None) -> list[Cause]:
    # pkg/apis/core/validation.ValidateSecret / ValidateSecretUpdate
    causes: list[Cause] = []
    data: dict[str, str] = obj.get("data") or {}
    size = 0
    for key, value in data.items():
        causes.extend(invalid_cause(f"data[{key}]", key, msg) for msg in config_key(key))
        size += len(base64.b64decode(value))
    if size > MAX_SECRET_SIZE:
        causes.append(
            Cause("data", f"Too long: must have at most {MAX_SECRET_SIZE} bytes", "FieldValueTooLong")
        )
    kind = obj.get("type")
    annotations = deep(obj, "metadata", "annotations") or {}
    if kind == SA_TOKEN_TYPE and not annotations.get(SA_NAME_ANNOTATION):
        causes.append(required_cause(f"metadata.annotations[{SA_NAME_ANNOTATION}]"))
    elif kind == "kubernetes.io/tls":
        causes.extend(required_cause(f"data[{k}]") for k in ("tls.crt", "tls.key") if k not in data)
    elif kind == "kubernetes.io/dockerconfigjson" and ".dockerconfigjson" not in data:
        causes.append(required_cause("data[.dockerconfigjson]"))
    if old is not None:
        if kind != old.get("type"):
            causes.append(invalid_cause("type", kind, "field is immutable"))
        if old.get("immutable"):
            if not obj.get("immutable"):
                causes.append(forbidden_cause("immutable", "field is immutable when `immutable` is set"))
            if data != (old.get("data") or {}):
                causes.append(forbidden_cause("data", "field is immutable when `immutable` is set"))
    return causes


SECRET_STRATEGY = Strategy(
    SECRETS,
    prepare=_prepare_secret,
    validate=_validate_secret,
    columns=(
        NAME,
        Column("Type", lambda o: o.get("type", "")),
        Column("Data", lambda o: len(o.get("data") or {}), type="integer"),
        AGE,
    ),
    field_labels={"type": lambda o: str(o.get("type", ""))},
)


# -- pods ---------------------------------------------------------------------------------------------------
def _prepare_pod(_ctx: SimContext, obj: Obj, old: Obj | None) -> None:
    spec = obj.get("spec")
    if spec is None:
        spec = {}
    if not isinstance(spec, dict):
        raise cannot_handle(PODS, "spec", "v1.PodSpec", spec)
    containers = spec.get("containers")
    if containers is not None and (
        not isinstance(containers, list) or not all(isinstance(c, dict) for c in containers)
    ):
        raise cannot_handle(PODS, "spec.containers", "[]v1.Container", containers)
    if old is None:
        # ServiceAccount admission: default the service account; the deprecated field mirrors it
        spec["serviceAccountName"] = spec.get("serviceAccountName") or spec.get("serviceAccount") or "default"
        spec["serviceAccount"] = spec["serviceAccountName"]
        obj["status"] = {"phase": "Pending", "qosClass": "BestEffort"}
    else:
        obj["status"] = old.get("status") or {}
    obj["spec"] = spec


def _validate_pod(_ctx: SimContext, obj: Obj, old: Obj | None) -> list[Cause]:
    causes: list[Cause] = []
    spec = obj.get("spec") or {}
    containers = spec.get("containers") or []
    if not containers:
        causes.append(required_cause("spec.containers"))
    for i, container in enumerate(containers):
        name = container.get("name")
        if not name:
            causes.append(required_cause(f"spec.containers[{i}].name"))
        else:
            causes.extend(invalid_cause(f"spec.containers[{i}].name", name, m) for m in dns1123_label(name))
        if not container.get("image") and old is None:
            causes.append(required_cause(f"spec.containers[{i}].image"))
    node = spec.get("nodeName")
    if node:
        causes.extend(invalid_cause("spec.nodeName", node, m) for m in dns1123_subdomain(node))
    if old is not None:
        changed = _without_images(spec) != _without_images(old.get("spec") or {})
        if changed:
            causes.append(
                forbidden_cause(
                    "spec",
                    "pod updates may not change fields other than `spec.containers[*].image`,"
                    "`spec.initContainers[*].image`,`spec.activeDeadlineSeconds`,`spec.tolerations` "
                    "(only additions to existing tolerations),`spec.terminationGracePeriodSeconds` "
                    "(allow it to be set to 1 if it was previously negative)",
                )
            )
    return causes


def _without_images(spec: Obj) -> Obj:
    copy = {k: v for k, v in spec.items() if k not in ("activeDeadlineSeconds", "tolerations")}
    copy["containers"] = [{k: v for k, v in c.items() if k != "image"} for c in spec.get("containers") or []]
    return copy


def _admit_pod(ctx: SimContext, _requester: Requester, obj: Obj, old: Obj | None) -> None:
    if old is not None:
        return
    ns = obj["metadata"].get("namespace", "")
    sa = obj["spec"]["serviceAccountName"]
    if ctx.store.try_get(SERVICEACCOUNTS, ns, sa) is None:
        name = obj["metadata"].get("name", "")
        raise ApiError(
            403,
            "Forbidden",
            f'pods "{name}" is forbidden: error looking up service account {ns}/{sa}: serviceaccount "{sa}" not found',
            {"name": name, "kind": "pods"},
        )


def _ready(obj: Obj) -> str:
    n = len(deep(obj, "spec", "containers") or [])
    return f"0/{n}"


POD_STRATEGY = Strategy(
    PODS,
    prepare=_prepare_pod,
    validate=_validate_pod,
    admit=_admit_pod,
    delete_returns_object=True,
    columns=(
        NAME,
        Column("Ready", _ready),
        Column("Status", lambda o: deep(o, "status", "phase") or ""),
        Column("Restarts", lambda o: "0"),
        AGE,
        Column("IP", lambda o: deep(o, "status", "podIP") or "<none>", priority=1),
        Column("Node", lambda o: deep(o, "spec", "nodeName") or "<none>", priority=1),
    ),
    field_labels={
        "spec.nodeName": lambda o: str(deep(o, "spec", "nodeName") or ""),
        "spec.serviceAccountName": lambda o: str(deep(o, "spec", "serviceAccountName") or ""),
        "status.phase": lambda o: str(deep(o, "status", "phase") or ""),
    },
)


# -- nodes --------------------------------------------------------------------------------------------------
NODE_STRATEGY = Strategy(
    NODES,
    delete_returns_object=False,
    columns=(NAME, Column("Status", lambda o: "Unknown"), Column("Roles", lambda o: "<none>"), AGE),
)


def strategies(namespaced_types: Callable[[], list[ResourceType]]) -> list[Strategy]:
    return [
        namespace_strategy(namespaced_types),
        SERVICEACCOUNT_STRATEGY,
        SECRET_STRATEGY,
        POD_STRATEGY,
        NODE_STRATEGY,
    ]


# -- the serviceaccounts controller: a "default" ServiceAccount in every namespace -----------------------------
def install_default_serviceaccounts(store: Store) -> Callable[[], None]:
    """Like kube-controller-manager's serviceaccounts controller (asynchronously, after the namespace is stored).

    Returns a function that uninstalls it.
    """

    def ensure(namespace: str) -> None:
        if store.try_get(NAMESPACES, None, namespace) is None:
            return
        if store.try_get(SERVICEACCOUNTS, namespace, "default") is None:
            store.create(SERVICEACCOUNTS, namespace, {"metadata": {"name": "default"}})

    def on_event(event: str, rtype: ResourceType, obj: Obj) -> None:
        if rtype.key == NAMESPACES.key and event == "ADDED":
            _later(ensure, obj["metadata"]["name"])
        elif rtype.key == SERVICEACCOUNTS.key and event == "DELETED" and obj["metadata"]["name"] == "default":
            _later(ensure, obj["metadata"].get("namespace", ""))

    store.add_listener(on_event)
    return lambda: store.remove_listener(on_event)


def _later(fn: Callable[[str], None], arg: str) -> None:
    try:
        asyncio.get_running_loop().call_soon(fn, arg)
    except RuntimeError:
        fn(arg)


def namespace_object(name: str) -> Obj:
    """A namespace as the API would store it from `{"metadata":{"name":...}}` (for bootstrap)."""
    obj: Obj = {"metadata": {"name": name}}
    _prepare_namespace(None, obj, None)
    return obj
