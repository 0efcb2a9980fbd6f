"""POST /v1/audit/correlations: a kube-apiserver audit log in, per token the requests it made out.

The body is the log itself (JSON lines, as `--audit-log-path` writes it), streamed: it is read chunk by chunk
and only events that carry a token's jti are kept (bounded, broker/audit/correlate.py), so a large log costs
no memory. `token-broker audit correlate --k8s-audit-log FILE` sends just the lines that can match.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime
from typing import Final

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from broker.domain.activity import KubeRequest, TokenActivity
from broker.domain.errors import BrokerError, ErrorKind, unavailable
from broker.http.auth import authenticate
from broker.http.keys import CORRELATION
from broker.http.models import IssuanceView
from broker.http.openapi import Operation, Reply
from broker.http.operators import issuance_view, parse_query, query_parameters
from broker.usecases.ports import Correlation

NDJSON_TYPES: Final = frozenset({"application/x-ndjson", "application/jsonl", "application/json-lines"})
# the most a caller may upload in one request (the CLI sends only the lines that can match)
MAX_UPLOAD: Final = 256 * 1024 * 1024
_CHUNK = 1 << 16
VISIBILITY: Final = (
    "Operators see every token the log names (tokens this broker did not issue have no record); any other "
    "caller only the tokens it obtained."
)


class CorrelationQuery(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    jti: str | None = Field(default=None, max_length=256, description="only this token (credential-id JTI=…)")


class KubeRequestView(BaseModel):
    time: datetime = Field(description="when the API server received the request")
    verb: str
    resource: str = Field(description='resource[/subresource], "" for a non-resource URL')
    api_group: str
    namespace: str
    name: str
    code: int = Field(description="the response code (0 when the logged stage carries none)")
    request_uri: str
    username: str
    user_agent: str
    source_ips: list[str]
    audit_id: str


class TokenActivityView(BaseModel):
    jti: str
    token: IssuanceView | None = Field(description="the issuance record; null: not issued by this broker")
    requests: list[KubeRequestView] = Field(description="oldest first")
    requests_dropped: int = Field(description="requests beyond the per-token bound: counted, not listed")


class CorrelationReport(BaseModel):
    tokens: list[TokenActivityView]
    lines: int = Field(description="lines read")
    events_matched: int = Field(description="audit events of the tokens listed")
    unparsable_lines: int
    tokens_dropped: int = Field(description="tokens beyond the bound: their requests were not kept")


def _request_view(r: KubeRequest) -> KubeRequestView:
    return KubeRequestView(
        time=r.time,
        verb=r.verb,
        resource=r.resource,
        api_group=r.api_group,
        namespace=r.namespace,
        name=r.name,
        code=r.code,
        request_uri=r.request_uri,
        username=r.username,
        user_agent=r.user_agent,
        source_ips=list(r.source_ips),
        audit_id=r.audit_id,
    )


def _activity_view(a: TokenActivity, now: datetime) -> TokenActivityView:
    return TokenActivityView(
        jti=a.jti,
        token=None if a.issuance is None else issuance_view(a.issuance, now),
        requests=[_request_view(r) for r in a.requests],
        requests_dropped=a.dropped,
    )


def report(result: Correlation, now: datetime) -> CorrelationReport:
    return CorrelationReport(
        tokens=[_activity_view(a, now) for a in result.tokens],
        lines=result.lines,
        events_matched=sum(len(a.requests) + a.dropped for a in result.tokens),
        unparsable_lines=result.unparsable_lines,
        tokens_dropped=result.tokens_dropped,
    )


async def _chunks(request: web.Request) -> AsyncIterator[bytes]:
    total = 0
    async for chunk in request.content.iter_chunked(_CHUNK):
        total += len(chunk)
        if total > MAX_UPLOAD:
            raise BrokerError(
                ErrorKind.BODY_TOO_LARGE, f"an audit log upload is limited to {MAX_UPLOAD} bytes"
            )
        yield chunk


async def correlate(request: web.Request) -> web.Response:
    caller = await authenticate(request)
    correlator = request.app.get(CORRELATION)
    if correlator is None:
        raise unavailable(
            "audit store unavailable",
            reason="correlation needs the audit store",
            kind=ErrorKind.AUDIT_UNAVAILABLE,
        )
    q = parse_query(request, CorrelationQuery)
    if request.content_type not in NDJSON_TYPES:
        raise BrokerError(
            ErrorKind.UNSUPPORTED_MEDIA_TYPE,
            "send the kube-apiserver audit log as application/x-ndjson (one JSON event per line)",
        )
    jti = q.jti.strip().removeprefix("JTI=") if q.jti else None
    result = await correlator.correlate(caller, _chunks(request), jti=jti)
    return web.Response(
        text=report(result, datetime.now(UTC)).model_dump_json(),
        content_type="application/json",
        headers={"Cache-Control": "no-store"},
    )


ROUTE: Final = (
    Operation(
        "POST",
        "/v1/audit/correlations",
        "correlateKubeAudit",
        "What each token did in the cluster: the body is a kube-apiserver audit log (JSON lines, as "
        "--audit-log-path writes it, Content-Type application/x-ndjson); every request made with a token this "
        "broker issued is listed under its issuance record, joined through "
        'user.extra["authentication.kubernetes.io/credential-id"] = ["JTI=…"]. ' + VISIBILITY,
        authenticated=True,
        query=query_parameters(CorrelationQuery),
        replies={
            200: Reply(
                "per token, its issuance record and requests",
                content={"application/json": CorrelationReport},
                headers={"Cache-Control": "no-store"},
            )
        },
        errors={
            413: f"the upload is larger than {MAX_UPLOAD} bytes",
            415: "the body is not application/x-ndjson",
            422: "a query parameter is invalid",
            503: "the audit store is unavailable",
        },
        tags=("audit",),
    ),
    correlate,
)
