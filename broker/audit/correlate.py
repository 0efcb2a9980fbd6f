"""What a token did: kube-apiserver audit events joined to the broker's issuance records by the token's jti.

A kube-apiserver started with `--audit-log-path` writes one JSON `audit.k8s.io/v1` Event per line. A request
made with a bound service-account token carries the token's jti in
`user.extra["authentication.kubernetes.io/credential-id"] = ["JTI=<uuid>"]` (Kubernetes 1.32+), the same jti
the broker records for the issuance. One request can appear once per stage (RequestReceived, ResponseStarted,
ResponseComplete, Panic): it is kept once, by auditID, in its latest stage.

Memory is bounded: at most `max_tokens` distinct jtis and `max_requests` requests per token are kept (the rest
are counted, not kept); lines without a jti are parsed only as far as needed to find out.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterable, Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from broker.domain.activity import KubeRequest, TokenActivity

from .records import AuditRecord

__all__ = ["KubeRequest", "LogReader", "LogScan", "TokenActivity", "lines_of"]

CREDENTIAL_ID = "authentication.kubernetes.io/credential-id"
# a cheap test before parsing a line: requests made with anything but a bound token cannot match
MARKER = b'"JTI='
_STAGE_RANK = {"RequestReceived": 0, "ResponseStarted": 1, "ResponseComplete": 2, "Panic": 3}
MAX_TOKENS = 10_000
MAX_REQUESTS = 10_000
# a line longer than this is not an audit event of a request we can use (RequestResponse level bodies)
MAX_LINE = 4 * 1024 * 1024


@dataclass
class _Token:
    requests: dict[str, KubeRequest] = field(default_factory=dict)
    dropped: int = 0


@dataclass
class LogScan:
    """What reading the log found, before the join."""

    tokens: dict[str, _Token] = field(default_factory=dict)
    lines: int = 0
    matched: int = 0
    unparsable: int = 0
    # distinct jtis beyond max_tokens: their requests were not kept
    tokens_dropped: int = 0


def jti_of(event: dict[str, Any]) -> str | None:
    user = event.get("user")
    extra = user.get("extra") if isinstance(user, dict) else None
    values = extra.get(CREDENTIAL_ID) if isinstance(extra, dict) else None
    if not isinstance(values, list):
        return None
    for value in values:
        if isinstance(value, str) and value.startswith("JTI="):
            return value.removeprefix("JTI=")
    return None


def _time(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value.replace("Z", "+00:00"))
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else None


def _str(mapping: Any, key: str) -> str:
    value = mapping.get(key) if isinstance(mapping, dict) else None
    return value if isinstance(value, str) else ""


def parse_request(event: dict[str, Any]) -> KubeRequest | None:
    """The request an audit Event describes; None when it is not one (no auditID, no time)."""
    audit_id = _str(event, "auditID")
    moment = _time(event.get("requestReceivedTimestamp")) or _time(event.get("stageTimestamp"))
    if not audit_id or moment is None:
        return None
    ref = event.get("objectRef")
    resource = _str(ref, "resource")
    if sub := _str(ref, "subresource"):
        resource = f"{resource}/{sub}"
    status = event.get("responseStatus")
    code = status.get("code") if isinstance(status, dict) else None
    user = event.get("user")
    ips = event.get("sourceIPs")
    return KubeRequest(
        audit_id=audit_id,
        time=moment,
        stage=_str(event, "stage"),
        verb=_str(event, "verb"),
        resource=resource,
        api_group=_str(ref, "apiGroup"),
        namespace=_str(ref, "namespace"),
        name=_str(ref, "name"),
        code=code if isinstance(code, int) and not isinstance(code, bool) else 0,
        request_uri=_str(event, "requestURI"),
        username=_str(user, "username"),
        user_agent=_str(event, "userAgent"),
        source_ips=tuple(ip for ip in ips if isinstance(ip, str)) if isinstance(ips, list) else (),
    )


class LogReader:
    """Feed it the log line by line (`add`), then join (`correlate`)."""

    def __init__(
        self, *, only_jti: str | None = None, max_tokens: int = MAX_TOKENS, max_requests: int = MAX_REQUESTS
    ) -> None:
        self.scan = LogScan()
        self._only = only_jti
        self._max_tokens = max_tokens
        self._max_requests = max_requests
        self._dropped_jtis: set[str] = set()

    def add(self, line: bytes) -> None:
        self.scan.lines += 1
        if MARKER not in line or len(line) > MAX_LINE:
            return
        try:
            event = json.loads(line)
        except ValueError:
            self.scan.unparsable += 1
            return
        if not isinstance(event, dict):
            self.scan.unparsable += 1
            return
        jti = jti_of(event)
        if jti is None or (self._only is not None and jti != self._only):
            return
        request = parse_request(event)
        if request is None:
            self.scan.unparsable += 1
            return
        self.scan.matched += 1
        self._keep(jti, request)

    def _keep(self, jti: str, request: KubeRequest) -> None:
        token = self.scan.tokens.get(jti)
        if token is None:
            if len(self.scan.tokens) >= self._max_tokens:
                if jti not in self._dropped_jtis and len(self._dropped_jtis) < self._max_tokens:
                    self._dropped_jtis.add(jti)
                    self.scan.tokens_dropped += 1
                return
            token = self.scan.tokens[jti] = _Token()
        seen = token.requests.get(request.audit_id)
        if seen is not None:
            # the same request in another stage: keep the latest one (it has the response code)
            if _STAGE_RANK.get(request.stage, -1) >= _STAGE_RANK.get(seen.stage, -1):
                token.requests[request.audit_id] = request
            return
        if len(token.requests) >= self._max_requests:
            token.dropped += 1
            return
        token.requests[request.audit_id] = request

    def add_text(self, lines: Iterable[bytes]) -> None:
        for line in lines:
            self.add(line)

    async def add_stream(self, lines: AsyncIterable[bytes]) -> None:
        async for line in lines:
            self.add(line)

    async def correlate(self, find: Callable[[str], Awaitable[AuditRecord | None]]) -> list[TokenActivity]:
        """Each token the log names, with its issuance record (looked up by jti), requests oldest first;
        ordered by issuance time (tokens this broker did not issue last, by their first request)."""
        found = []
        for jti, token in self.scan.tokens.items():
            requests = tuple(sorted(token.requests.values(), key=lambda r: (r.time, r.audit_id)))
            found.append(TokenActivity(jti, await find(jti), requests, token.dropped))

        def order(activity: TokenActivity) -> tuple[int, datetime, str]:
            if activity.issuance is not None:
                return (0, activity.issuance.time, activity.jti)
            return (1, activity.requests[0].time, activity.jti)

        return sorted(found, key=order)


async def lines_of(chunks: AsyncIterable[bytes], max_line: int = MAX_LINE) -> AsyncIterable[bytes]:
    """Lines of a byte stream, without the newline; a line longer than `max_line` is skipped whole (its
    bytes are not kept), so memory stays bounded whatever arrives."""
    buffer = bytearray()
    skipping = False
    async for chunk in chunks:
        buffer += chunk
        start = 0
        while (end := buffer.find(b"\n", start)) >= 0:
            if not skipping:
                yield bytes(buffer[start:end])
            skipping = False
            start = end + 1
        del buffer[:start]
        if len(buffer) > max_line:
            buffer.clear()
            skipping = True
    if buffer and not skipping:
        yield bytes(buffer)
