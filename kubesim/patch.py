"""The PATCH bodies a kube-apiserver accepts: JSON merge patch (RFC 7386), JSON patch (RFC 6902) and
strategic merge patch (applied with merge semantics: the types served here have no list merge keys that
matter to their clients)."""

from __future__ import annotations

import copy
import json
from typing import Any

from .status import ApiError, bad_request, unsupported_media_type

MERGE = "application/merge-patch+json"
STRATEGIC = "application/strategic-merge-patch+json"
JSON_PATCH = "application/json-patch+json"
APPLY = "application/apply-patch+yaml"
SUPPORTED = (MERGE, STRATEGIC, JSON_PATCH)


def _invalid_patch(message: str) -> ApiError:
    # patch.go answers a patch that cannot be applied with 422 (errors.NewGenericServerResponse)
    return ApiError(422, "Invalid", message)


def merge_patch(target: Any, patch: Any) -> Any:
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = merge_patch(result.get(key), value)
    return result


def _strip_directives(patch: Any) -> Any:
    # $patch, $retainKeys, $setElementOrder/..., $deleteFromPrimitiveList/... steer list merging; merge
    # semantics ignore them
    if isinstance(patch, dict):
        return {k: _strip_directives(v) for k, v in patch.items() if not k.startswith("$")}
    if isinstance(patch, list):
        return [_strip_directives(v) for v in patch]
    return patch


def _pointer(path: str) -> list[str]:
    if path == "":
        return []
    if not path.startswith("/"):
        raise _invalid_patch(
            f'the server rejected our request due to an error in our request: invalid path "{path}"'
        )
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _walk(doc: Any, parts: list[str], path: str) -> Any:
    for part in parts:
        if isinstance(doc, dict) and part in doc:
            doc = doc[part]
        elif isinstance(doc, list) and part.isdigit() and int(part) < len(doc):
            doc = doc[int(part)]
        else:
            raise _invalid_patch(f"doc is missing path: {path}: missing value")
    return doc


def _add(doc: Any, parts: list[str], value: Any, path: str) -> Any:
    if not parts:
        return copy.deepcopy(value)
    parent = _walk(doc, parts[:-1], path)
    key = parts[-1]
    if isinstance(parent, dict):
        parent[key] = copy.deepcopy(value)
    elif isinstance(parent, list):
        if key == "-":
            parent.append(copy.deepcopy(value))
        elif key.isdigit() and int(key) <= len(parent):
            parent.insert(int(key), copy.deepcopy(value))
        else:
            raise _invalid_patch(f"add operation does not apply: doc is missing path: {path}")
    else:
        raise _invalid_patch(f"add operation does not apply: doc is missing path: {path}")
    return doc


def _remove(doc: Any, parts: list[str], path: str) -> tuple[Any, Any]:
    if not parts:
        raise _invalid_patch("unable to remove the document root")
    parent = _walk(doc, parts[:-1], path)
    key = parts[-1]
    if isinstance(parent, dict) and key in parent:
        return doc, parent.pop(key)
    if isinstance(parent, list) and key.isdigit() and int(key) < len(parent):
        return doc, parent.pop(int(key))
    raise _invalid_patch(f"remove operation does not apply: doc is missing path: {path}")


def json_patch(target: Any, operations: Any) -> Any:
    if not isinstance(operations, list):
        raise bad_request("json: cannot unmarshal object into Go value of type jsonpatch.Patch")
    doc = copy.deepcopy(target)
    for op in operations:
        if (
            not isinstance(op, dict)
            or not isinstance(op.get("op"), str)
            or not isinstance(op.get("path"), str)
        ):
            raise _invalid_patch("the server rejected our request due to an error in our request")
        kind, path = op["op"], op["path"]
        parts = _pointer(path)
        if kind == "add":
            doc = _add(doc, parts, op.get("value"), path)
        elif kind == "remove":
            doc, _ = _remove(doc, parts, path)
        elif kind == "replace":
            _walk(doc, parts, path)
            doc, _ = _remove(doc, parts, path) if parts else (doc, None)
            doc = _add(doc, parts, op.get("value"), path)
        elif kind in ("move", "copy"):
            source = op.get("from")
            if not isinstance(source, str):
                raise _invalid_patch(f"{kind} operation does not apply: missing from")
            from_parts = _pointer(source)
            if kind == "move":
                doc, value = _remove(doc, from_parts, source)
            else:
                value = copy.deepcopy(_walk(doc, from_parts, source))
            doc = _add(doc, parts, value, path)
        elif kind == "test":
            if _walk(doc, parts, path) != op.get("value"):
                raise _invalid_patch(f"testing value {path} failed: test failed")
        else:
            raise _invalid_patch(f"Unexpected kind: {kind}")
    return doc


def apply(content_type: str, target: dict[str, Any], raw: bytes) -> dict[str, Any]:
    """Apply a PATCH body of the given content type to a copy of target."""
    if content_type == APPLY:
        # server-side apply needs field management this simulator does not keep
        raise unsupported_media_type(content_type)
    if content_type not in SUPPORTED:
        raise unsupported_media_type(content_type)
    try:
        patch = json.loads(raw or b"null")
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"error decoding patch: {exc}") from None
    if content_type == JSON_PATCH:
        result = json_patch(target, patch)
    else:
        if not isinstance(patch, dict):
            raise bad_request(
                "error decoding patch: json: cannot unmarshal into Go value of type map[string]interface {}"
            )
        if content_type == STRATEGIC:
            patch = _strip_directives(patch)
        result = merge_patch(target, patch)
    if not isinstance(result, dict):
        raise _invalid_patch("the patched object is not a JSON object")
    return result
