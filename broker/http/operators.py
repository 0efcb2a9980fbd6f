"""The audit trail over HTTP: GET /v1/tokens, GET /v1/audit, DELETE /v1/tokens/{token_id}, POST /v1/introspect.

Who sees what is decided by the use cases (broker.usecases.access); this module parses, authenticates and
renders. No token is ever written into a response or a log line here: records hold only jti and SHA-256.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from aiohttp import web
from pydantic import BaseModel, ValidationError

from broker.domain.errors import BrokerError, ErrorKind, unavailable, unprocessable
from broker.domain.records import AuditFilter, AuditRecord
from broker.http.auth import authenticate
from broker.http.body import parse_body
from broker.http.keys import INTROSPECTION, RECORDS, REVOCATION
from broker.http.models import (
    AuditEventList,
    AuditEventView,
    AuditListQuery,
    CallerView,
    IntrospectionRequest,
    IntrospectionResponse,
    IssuanceList,
    IssuanceView,
    RevokeRequest,
    SecretView,
    TokenListQuery,
)
from broker.http.problem import ProblemError
from broker.usecases.ports import Introspection, RecordQuery

log = logging.getLogger(__name__)

NDJSON = "application/x-ndjson"
_NO_STORE = {"Cache-Control": "no-store"}
# lines buffered before a write: few syscalls, bounded memory
_LINES_PER_WRITE = 256
_MAX_TOKEN_ID = 256

QueryT = TypeVar("QueryT", bound=BaseModel)


PortT = TypeVar("PortT")


def _port(request: web.Request, key: web.AppKey[PortT]) -> PortT:
    port = request.app.get(key)
    if port is None:
        raise unavailable("audit store not configured", retry_after=60.0, kind=ErrorKind.AUDIT_UNAVAILABLE)
    return port


# -- query parameters ------------------------------------------------------------------------------------------


def _query_problem(errors: list[dict[str, str]]) -> ProblemError:
    detail = "; ".join(f"{e['field']}: {e['problem']}" for e in errors)
    return ProblemError(unprocessable(f"invalid query parameter: {detail}"), {"errors": errors})


def parse_query(request: web.Request, model: type[QueryT]) -> QueryT:
    """422 naming each bad parameter (unknown ones too: a misspelt filter must not widen a listing)."""
    raw: dict[str, str] = {}
    for key in dict.fromkeys(request.query.keys()):
        values = request.query.getall(key)
        if len(values) > 1:
            raise _query_problem([{"field": key[:40], "problem": "given more than once"}])
        # an empty value is an absent filter (scripts that always pass every parameter)
        if values[0] != "":
            raw[key] = values[0]
    try:
        return model.model_validate(raw)
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_input=False, include_context=False)
        listed = [
            {
                "field": ".".join(str(p) for p in e["loc"])[:40] or "(query)",
                "problem": "unknown parameter"
                if e["type"] == "extra_forbidden"
                else str(e["msg"]).removeprefix("Value error, "),
            }
            for e in errors[:10]
        ]
        raise _query_problem(listed) from None


def _filter(q: TokenListQuery | AuditListQuery) -> AuditFilter:
    if q.since is not None and q.until is not None and q.until <= q.since:
        raise _query_problem([{"field": "until", "problem": "must be later than since"}])
    return AuditFilter(
        caller=q.caller,
        role=q.role,
        namespace=q.namespace,
        cluster=q.cluster,
        event=q.state if isinstance(q, TokenListQuery) else q.event,
        token_id=q.token_id,
        active=q.active if isinstance(q, TokenListQuery) else None,
        since=q.since,
        until=q.until,
    )


# -- records → documents ---------------------------------------------------------------------------------------


def _common(record: AuditRecord) -> dict[str, Any]:
    secret = record.bound_secret
    return {
        "caller": CallerView(
            user=record.caller_user, method=record.caller_method, groups=list(record.caller_groups)
        ),
        "role": record.role,
        "cluster": record.cluster,
        "namespace": record.namespace,
        "service_account": record.service_account,
        "audiences": list(record.audiences),
        "ttl_requested": record.ttl_requested,
        "ttl_granted": record.ttl_granted,
        "jti": record.jti,
        "token_sha256": record.token_sha256,
        "issued_at": record.issued_at,
        "expires_at": record.expires_at,
        "revoke_at": record.revoke_at,
        "bound_secret": None if secret is None else SecretView(namespace=secret.namespace, name=secret.name),
        "context": dict(record.context),
        "source_address": record.source_address,
        "user_agent": record.user_agent,
        "status": record.status,
        "reason": record.reason,
        "request_id": record.request_id,
        "revoked_by": record.revoked_by,
        "revoked_at": record.revoked_at,
    }


def issuance_view(record: AuditRecord, now: datetime) -> IssuanceView:
    return IssuanceView(
        token_id=record.id,
        state=record.event,
        active=record.live_at(now),
        requested_at=record.time,
        **_common(record),
    )


def event_view(record: AuditRecord) -> AuditEventView:
    return AuditEventView(
        event_id=record.event_id or "",
        event=record.event,
        time=record.time,
        token_id=record.id,
        **_common(record),
    )


def introspection_response(result: Introspection, now: datetime) -> IntrospectionResponse:
    record = result.record
    if record is None:
        return IntrospectionResponse(active=False)
    fields: dict[str, Any] = {
        "active": result.active,
        "token_id": record.id,
        "state": record.event,
        "revoked": record.event == "revoked",
        "issuance": issuance_view(record, now),
    }
    ends = [t for t in (record.expires_at, record.revoke_at) if t is not None]
    if ends:
        fields["expires_at"] = min(ends)
    if result.reason:
        fields["reason"] = result.reason
    if result.claims is not None:
        fields["claims"] = dict(result.claims)
    return IntrospectionResponse(**fields)


def _json(model: BaseModel, **dump: Any) -> web.Response:
    return web.Response(
        text=model.model_dump_json(**dump), content_type="application/json", headers=_NO_STORE
    )


async def _stream(
    request: web.Request, records: AsyncIterator[AuditRecord], render: Callable[[AuditRecord], BaseModel]
) -> web.StreamResponse:
    """JSON lines. The first page is read before the status line is sent, so a bad cursor or an unreachable
    store is still a problem+json; a failure after that aborts the connection, so a cut-off export can never
    pass for a complete one (the chunked body has no final chunk)."""
    try:
        first = await anext(records, None)
        response = web.StreamResponse(status=200, headers={"Content-Type": NDJSON, **_NO_STORE})
        await response.prepare(request)
        lines: list[str] = []
        try:
            if first is not None:
                lines.append(render(first).model_dump_json() + "\n")
                async for record in records:
                    lines.append(render(record).model_dump_json() + "\n")
                    if len(lines) >= _LINES_PER_WRITE:
                        await response.write("".join(lines).encode())
                        lines.clear()
            if lines:
                await response.write("".join(lines).encode())
        except BrokerError as err:
            log.warning("export interrupted: %s (%s)", err, err.reason)
            if request.transport is not None:
                request.transport.abort()
            return response
        await response.write_eof()
        return response
    finally:
        close = getattr(records, "aclose", None)
        if close is not None:
            await close()


# -- handlers --------------------------------------------------------------------------------------------------


async def list_tokens(request: web.Request) -> web.StreamResponse:
    caller = await authenticate(request)
    ops = _port(request, RECORDS)
    q = parse_query(request, TokenListQuery)
    query = RecordQuery(filter=_filter(q), cursor=q.cursor, limit=q.page_size, jti=q.jti)
    now = datetime.now(UTC)
    if q.format == "jsonl":
        return await _stream(
            request, ops.export_tokens(caller, query, q.export_size), lambda r: issuance_view(r, now)
        )
    page = await ops.list_tokens(caller, query)
    return _json(
        IssuanceList(items=[issuance_view(r, now) for r in page.items], next_cursor=page.next_cursor)
    )


async def list_audit(request: web.Request) -> web.StreamResponse:
    caller = await authenticate(request)
    ops = _port(request, RECORDS)
    q = parse_query(request, AuditListQuery)
    query = RecordQuery(filter=_filter(q), cursor=q.cursor, limit=q.page_size, jti=q.jti)
    if q.format == "jsonl":
        return await _stream(request, ops.export_events(caller, query, q.export_size), event_view)
    page = await ops.list_events(caller, query)
    return _json(AuditEventList(items=[event_view(r) for r in page.items], next_cursor=page.next_cursor))


async def revoke_token(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    ops = _port(request, REVOCATION)
    reason = ""
    if request.body_exists:
        reason = (await parse_body(request, RevokeRequest)).reason
    token_id = request.match_info["token_id"]
    if len(token_id) > _MAX_TOKEN_ID or not token_id.isprintable():
        raise BrokerError(ErrorKind.NOT_FOUND, "no such token")
    await ops.revoke(caller, token_id, reason)
    return web.Response(status=204, headers=_NO_STORE)


async def introspect(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    ops = _port(request, INTROSPECTION)
    body = await parse_body(request, IntrospectionRequest)
    result = await ops.introspect(caller, body.token)
    # exclude_unset: `{"active": false}` and nothing else for a token that is not ours
    return _json(introspection_response(result, datetime.now(UTC)), exclude_unset=True)


def query_parameters(model: type[BaseModel]) -> tuple[Mapping[str, Any], ...]:
    """OpenAPI `in: query` parameters from a query model (all optional)."""
    schema = model.model_json_schema()
    out = []
    for name, prop in schema.get("properties", {}).items():
        prop = dict(prop)
        description = prop.pop("description", "")
        prop.pop("title", None)
        prop.pop("default", None)
        # `X | None` is how pydantic spells "optional"; in a query an absent parameter says that already
        options = [o for o in prop.pop("anyOf", []) if o.get("type") != "null"]
        if len(options) == 1:
            prop.update(options[0])
        elif options:
            prop["anyOf"] = options
        entry: dict[str, Any] = {"name": name, "in": "query", "required": False, "schema": prop}
        if description:
            entry["description"] = description
        out.append(entry)
    return tuple(out)
