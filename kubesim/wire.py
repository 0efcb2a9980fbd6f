"""Request bodies in and JSON objects out, for the token endpoints (compact JSON like Go's encoder)."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Any

from aiohttp import web

from .status import bad_request


def rfc3339(moment: float) -> str:
    # metav1.Time marshals RFC 3339 in UTC, whole seconds
    return datetime.fromtimestamp(int(moment), UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def decode_object(body: bytes, kind: str) -> dict[str, Any]:
    """A JSON object body, or 400 BadRequest worded like the apiserver's decoder."""
    if not body.strip():
        raise bad_request("couldn't get version/kind; json parse error: unexpected end of JSON input")
    try:
        value = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise bad_request(f"couldn't get version/kind; json parse error: {exc}") from None
    if not isinstance(value, dict):
        raise bad_request(
            f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal '
            f"{_go_type(value)} into Go value of type struct"
        )
    return value


def type_error(kind: str, go_field: str, value: Any, go_type: str) -> Exception:
    return bad_request(
        f'{kind} in version "v1" cannot be handled as a {kind}: json: cannot unmarshal {_go_type(value)} '
        f"into Go struct field {go_field} of type {go_type}"
    )


def _go_type(value: Any) -> str:
    if isinstance(value, bool):
        return "bool"
    if isinstance(value, int | float):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if value is None:
        return "null"
    return "object"


def json_response(obj: Any, status: int = 200, headers: dict[str, str] | None = None) -> web.Response:
    body = json.dumps(obj, separators=(",", ":"), ensure_ascii=False).encode("utf-8")
    return web.Response(body=body, status=status, content_type="application/json", headers=headers)
