"""Reading a JSON request body: 400 for what is not a JSON object, 422 for what fails validation."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any, TypeVar

from aiohttp import web
from aiohttp.http_exceptions import HttpProcessingError
from pydantic import BaseModel, ValidationError

from broker.domain.errors import bad_request, unprocessable
from broker.http.problem import ProblemError

ModelT = TypeVar("ModelT", bound=BaseModel)

_MAX_LISTED_ERRORS = 10
_MAX_LOC_PART = 40
# media types accepted as JSON; a missing Content-Type is taken as JSON too (curl -d sends form-urlencoded,
# which we refuse explicitly so the caller learns why)
_JSON_TYPES = frozenset({"application/json", "application/octet-stream"})


def _loc_part(part: str | int) -> str:
    if isinstance(part, int):
        return f"[{part}]"
    text = str(part)
    return text if len(text) <= _MAX_LOC_PART else text[: _MAX_LOC_PART - 1] + "…"


def _field_path(loc: Sequence[str | int]) -> str:
    path = ""
    for part in loc:
        piece = _loc_part(part)
        path += piece if piece.startswith("[") or not path else "." + piece
    return path or "(body)"


def _message(error: Any) -> str:
    msg = str(error.get("msg", "invalid"))
    # pydantic prefixes messages of ValueErrors raised by validators
    return msg.removeprefix("Value error, ")


def validation_problem(exc: ValidationError) -> ProblemError:
    """422 naming each field and what is wrong with it, without echoing the input back."""
    errors = exc.errors(include_url=False, include_input=False, include_context=False)
    listed = [{"field": _field_path(e["loc"]), "problem": _message(e)} for e in errors[:_MAX_LISTED_ERRORS]]
    detail = "; ".join(f"{item['field']}: {item['problem']}" for item in listed)
    if len(errors) > _MAX_LISTED_ERRORS:
        detail += f"; and {len(errors) - _MAX_LISTED_ERRORS} more"
    return ProblemError(unprocessable(f"invalid request body: {detail}"), {"errors": listed})


async def read_json_object(request: web.Request) -> dict[str, Any]:
    if request.content_type not in _JSON_TYPES and not request.content_type.endswith("+json"):
        raise web.HTTPUnsupportedMediaType(text="send the request body as application/json")
    try:
        # raises HTTPRequestEntityTooLarge past the application's client_max_size
        raw = await request.read()
    except (HttpProcessingError, ConnectionError) as exc:
        raise bad_request("the request body could not be read") from exc
    if not raw:
        raise bad_request("a JSON object is required as the request body")
    try:
        value = json.loads(raw)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise bad_request("the request body is not valid JSON") from exc
    if not isinstance(value, dict):
        raise bad_request("the request body must be a JSON object")
    return value


async def parse_body(request: web.Request, model: type[ModelT]) -> ModelT:
    data = await read_json_object(request)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise validation_problem(exc) from None
