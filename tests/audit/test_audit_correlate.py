"""Reading a kube-apiserver audit log and joining it to issuance records (broker/audit/correlate.py)."""

from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator
from typing import Any

from audit_support import issue

from broker.audit import SqlAuditStore
from broker.audit.correlate import LogReader, lines_of


def event(jti: str | None, **kw: Any) -> bytes:
    credential = [f"JTI={jti}"] if jti else ["X509SHA256=ab12"]
    body: dict[str, Any] = {
        "kind": "Event",
        "apiVersion": "audit.k8s.io/v1",
        "auditID": kw.pop("audit_id", str(uuid.uuid4())),
        "stage": kw.pop("stage", "ResponseComplete"),
        "verb": kw.pop("verb", "get"),
        "requestURI": "/api/v1/namespaces/team-a/pods/web-0/log",
        "user": {
            "username": "system:serviceaccount:team-a:tb-deployer",
            "extra": {"authentication.kubernetes.io/credential-id": credential},
        },
        "objectRef": {"resource": "pods", "subresource": "log", "namespace": "team-a", "name": "web-0"},
        "responseStatus": {"code": kw.pop("code", 200)},
        "requestReceivedTimestamp": kw.pop("at", "2030-01-01T00:00:05.5Z"),
        "sourceIPs": ["10.0.0.9"],
    }
    body.update(kw)
    return json.dumps(body).encode()


async def chunks(data: bytes, size: int) -> AsyncIterator[bytes]:
    for start in range(0, len(data), size):
        yield data[start : start + size]


async def test_requests_are_joined_to_their_issuance(store: SqlAuditStore) -> None:
    issued = await issue(store)
    assert issued.jti is not None
    other = str(uuid.uuid4())
    reader = LogReader()
    reader.add_text(
        [
            event(issued.jti, at="2030-01-01T00:00:09Z", verb="list", code=403),
            event(issued.jti, audit_id="r1", stage="ResponseStarted", code=0),
            event(issued.jti, audit_id="r1"),
            event(other),
            event(None),  # a client certificate: no jti
            b"{broken",
        ]
    )
    [mine, theirs] = await reader.correlate(store.find_by_jti)
    assert mine.issuance is not None and mine.issuance.id == issued.id
    assert [(r.verb, r.resource, r.name, r.code) for r in mine.requests] == [
        ("get", "pods/log", "web-0", 200),
        ("list", "pods/log", "web-0", 403),
    ]
    assert mine.requests[0].source_ips == ("10.0.0.9",) and mine.requests[0].namespace == "team-a"
    assert theirs.jti == other and theirs.issuance is None
    # the broken line carried no jti marker: it was never parsed
    assert (reader.scan.lines, reader.scan.matched, reader.scan.unparsable) == (6, 4, 0)


async def test_memory_is_bounded() -> None:
    reader = LogReader(max_tokens=2, max_requests=3)
    jtis = [str(uuid.uuid4()) for _ in range(4)]
    for jti in jtis:
        for _ in range(5):
            reader.add(event(jti))
    assert len(reader.scan.tokens) == 2 and reader.scan.tokens_dropped == 2
    activities = await reader.correlate(lambda _jti: _none())
    assert [len(a.requests) for a in activities] == [3, 3] and [a.dropped for a in activities] == [2, 2]


async def _none() -> None:
    return None


async def test_lines_are_split_across_chunks_and_overlong_ones_skipped() -> None:
    jti = str(uuid.uuid4())
    data = b"\n".join([event(jti), b'{"x": "' + b"y" * 5000 + b'", "JTI=": 1}', event(jti, verb="delete")])
    got = [line async for line in lines_of(chunks(data, 7), max_line=2048)]
    assert [json.loads(line)["verb"] for line in got] == ["get", "delete"]
