"""GET /v1/tokens and GET /v1/audit against a real SQLite store: visibility, filters, paging, JSON lines, errors."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from ops_api_support import ALICE, ALICE_API_KEY, BOB, OPS, Api, record_issued
from support.served import assert_problem

from broker.audit import EVENTS, LOG_EVENTS, SqlAuditStore
from broker.http.models import IssuanceState, LogEvent

NOW = datetime.now(UTC).replace(microsecond=0)


@pytest.fixture(autouse=True)
def _now_is_this_tests_start(monkeypatch: pytest.MonkeyPatch) -> None:
    # records "issued now" must still be live when the test reads them, however long the suite ran before
    monkeypatch.setitem(globals(), "NOW", datetime.now(UTC).replace(microsecond=0))


ITEM_KEYS = {
    "token_id", "state", "active", "requested_at", "caller", "role", "cluster", "namespace", "service_account",
    "audiences", "ttl_requested", "ttl_granted", "jti", "token_sha256", "issued_at", "expires_at", "revoke_at",
    "bound_secret", "context", "source_address", "user_agent", "status", "reason", "request_id", "revoked_by",
    "revoked_at",
}  # fmt: skip


async def populate(store: SqlAuditStore) -> dict[str, list[str]]:
    """Nine issued tokens, one minute apart, by four callers (two of them named alice)."""
    owners = [OPS, ALICE, ALICE_API_KEY, BOB, ALICE, OPS, ALICE_API_KEY, ALICE, BOB]
    ids: dict[str, list[str]] = {}
    for i, caller in enumerate(owners):
        record = await record_issued(
            store,
            caller,
            began=NOW - timedelta(minutes=10 - i),
            role="viewer" if i % 3 == 0 else "deployer",
            namespace="apps" if i % 2 else "ci",
        )
        ids.setdefault(f"{caller.user}/{caller.method}", []).append(record.id)
    return ids


def ids_of(items: list[dict[str, Any]]) -> list[str]:
    return [i["token_id"] for i in items]


async def test_operators_see_everything_others_only_their_own(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    ids = await populate(store)
    api: Api = await make_api(store)

    everything = await api.get_json("/v1/tokens")
    assert len(everything["items"]) == 9 and everything["next_cursor"] is None
    # newest first
    times = [i["requested_at"] for i in everything["items"]]
    assert times == sorted(times, reverse=True)

    alice = await api.get_json("/v1/tokens", who="alice")
    assert set(ids_of(alice["items"])) == set(ids["alice/mtls"])
    # the API key named alice is another caller: it sees its own two, not the certificate's three
    alice_key = await api.get_json("/v1/tokens", who="alice-key")
    assert set(ids_of(alice_key["items"])) == set(ids["alice/api-key"])
    bob = await api.get_json("/v1/tokens", who="bob")
    assert set(ids_of(bob["items"])) == set(ids["bob/mtls"])

    # asking for someone else's records is an empty listing, not an error that confirms they exist
    assert (await api.get_json("/v1/tokens", who="alice", caller="bob"))["items"] == []
    assert (await api.get_json("/v1/audit", who="alice", caller="bob"))["items"] == []
    assert len((await api.get_json("/v1/tokens", caller="bob"))["items"]) == 2

    # the event log follows the same rule
    events = await api.get_json("/v1/audit", who="alice")
    assert {e["token_id"] for e in events["items"]} == set(ids["alice/mtls"])
    assert all(e["event"] == "issued" for e in events["items"])
    assert len((await api.get_json("/v1/audit"))["items"]) == 9


async def test_items_describe_the_issuance_and_never_carry_a_token(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    record = await record_issued(store, ALICE, began=NOW, context={"job": "deploy", "build": "https://ci/42"})
    api: Api = await make_api(store)
    [item] = (await api.get_json("/v1/tokens"))["items"]
    assert set(item) == ITEM_KEYS
    assert item["token_id"] == record.id and item["state"] == "issued" and item["active"] is True
    assert item["caller"] == {"user": "alice", "method": "mtls", "groups": ["dev"]}
    assert item["context"] == {"job": "deploy", "build": "https://ci/42"}
    assert item["jti"] == record.jti and item["token_sha256"] == record.token_sha256
    assert item["source_address"] == "192.0.2.7" and item["user_agent"] == "pytest"
    assert (
        item["expires_at"].endswith("Z") and datetime.fromisoformat(item["expires_at"]) == record.expires_at
    )
    assert "token" not in item
    [event] = (await api.get_json("/v1/audit"))["items"]
    assert event["event"] == "issued" and event["token_id"] == record.id and event["event_id"]
    assert event["status"] == 201


async def test_filters(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    ids = await populate(store)
    revoked_id, expired_id = ids["bob/mtls"]
    assert await store.mark_revoked(revoked_id, by="ops", at=NOW, reason="leaked in a build log")
    assert await store.mark_expired([expired_id], at=NOW)
    stale = await record_issued(
        store, ALICE, began=NOW - timedelta(hours=2), ttl=600, role="auditor", namespace="ci"
    )
    api: Api = await make_api(store)

    async def tokens(**params: str) -> set[str]:
        return set(ids_of((await api.get_json("/v1/tokens", **params))["items"]))

    assert await tokens(role="auditor") == {stale.id}
    assert await tokens(namespace="apps") == set(ids_of((await api.get_json("/v1/tokens"))["items"])) - (
        await tokens(namespace="ci")
    )
    assert await tokens(state="revoked") == {revoked_id}
    assert await tokens(state="expired") == {expired_id}
    # past its exp, never revoked: issued but not active
    assert stale.id not in await tokens(active="true")
    assert await tokens(active="false") == {revoked_id, expired_id, stale.id}
    assert len(await tokens(active="true")) == 7
    assert await tokens(cluster="elsewhere") == set()
    assert await tokens(token_id=revoked_id) == {revoked_id}
    window = await tokens(
        since=(NOW - timedelta(minutes=10)).isoformat(), until=(NOW - timedelta(minutes=8)).isoformat()
    )
    assert len(window) == 2
    assert await tokens(since=(NOW - timedelta(minutes=3)).isoformat().replace("+00:00", "Z")) == {
        ids["alice/mtls"][2],
        ids["bob/mtls"][1],
    }

    [revoked] = (await api.get_json("/v1/tokens", token_id=revoked_id))["items"]
    assert revoked["revoked_by"] == "ops" and revoked["reason"] == "leaked in a build log"
    history = await api.get_json("/v1/audit", token_id=revoked_id)
    assert [e["event"] for e in history["items"]] == ["revoked", "issued"]
    assert [e["event"] for e in (await api.get_json("/v1/audit", event="expired"))["items"]] == ["expired"]


async def test_jti_lookup_goes_from_a_kubernetes_audit_line_to_the_record(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    jti = "3c6d5f0e-4b8a-4bb4-9a55-0f6f3b7b1a2d"
    mine = await record_issued(store, ALICE, began=NOW, jti=jti)
    await record_issued(store, BOB, began=NOW)
    api: Api = await make_api(store)
    assert ids_of((await api.get_json("/v1/tokens", jti=jti))["items"]) == [mine.id]
    assert ids_of((await api.get_json("/v1/tokens", who="alice", jti=jti))["items"]) == [mine.id]
    assert (await api.get_json("/v1/tokens", who="bob", jti=jti))["items"] == []
    assert (await api.get_json("/v1/tokens", jti=jti, role="someone-else"))["items"] == []
    assert (await api.get_json("/v1/tokens", jti="no-such-jti"))["items"] == []
    events = await api.get_json("/v1/audit", jti=jti)
    assert [(e["event"], e["token_id"]) for e in events["items"]] == [("issued", mine.id)]
    assert (await api.get_json("/v1/audit", who="bob", jti=jti))["items"] == []


async def test_paging_follows_cursors_to_the_end(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    # 37 records, several sharing a timestamp: the (time, id) cursor must not skip or repeat any
    made = await asyncio.gather(
        *(
            record_issued(store, OPS if i % 4 else BOB, began=NOW - timedelta(seconds=i // 3))
            for i in range(37)
        )
    )
    api: Api = await make_api(store)
    pages: list[int] = []
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await api.get_json("/v1/tokens", limit="5", **({"cursor": cursor} if cursor else {}))
        pages.append(len(page["items"]))
        seen.extend(ids_of(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert pages == [5] * 7 + [2]
    assert len(seen) == len(set(seen)) == 37 and set(seen) == {r.id for r in made}
    events = await api.all_pages("/v1/audit", limit="4")
    assert len(events) == 37 and len({e["event_id"] for e in events}) == 37


async def test_paging_as_an_owner_skips_a_namesake_without_losing_rows(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    # alice (certificate) and alice (API key) interleaved: the store filters by user name, visibility by both
    mine = set()
    for i in range(23):
        caller = ALICE if i % 3 == 0 else ALICE_API_KEY
        record = await record_issued(store, caller, began=NOW - timedelta(seconds=i))
        if caller is ALICE:
            mine.add(record.id)
    api: Api = await make_api(store)
    seen: list[str] = []
    cursor: str | None = None
    while True:
        page = await api.get_json(
            "/v1/tokens", who="alice", limit="2", **({"cursor": cursor} if cursor else {})
        )
        assert len(page["items"]) <= 2
        assert all(i["caller"]["method"] == "mtls" for i in page["items"])
        seen.extend(ids_of(page["items"]))
        cursor = page["next_cursor"]
        if cursor is None:
            break
    assert len(seen) == len(set(seen)) and set(seen) == mine


async def test_jsonl_streams_every_matching_record(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    await asyncio.gather(
        *(record_issued(store, OPS if i % 2 else ALICE, began=NOW - timedelta(seconds=i)) for i in range(25))
    )
    # small store pages so the export crosses several of them
    api: Api = await make_api(store, export_page=4)
    paged = await api.all_pages("/v1/tokens", limit="7")
    response, body = await api.call("GET", "/v1/tokens", params={"format": "jsonl"})
    assert response.status == 200 and response.content_type == "application/x-ndjson"
    assert response.headers["Cache-Control"] == "no-store"
    lines = [json.loads(line) for line in body.decode().splitlines()]
    assert lines == paged
    # the same filters apply, and limit caps an export
    response, body = await api.call("GET", "/v1/tokens", who="alice", params={"format": "jsonl"})
    mine = [json.loads(line) for line in body.decode().splitlines()]
    assert len(mine) == 13 and {m["caller"]["user"] for m in mine} == {"alice"}
    response, body = await api.call("GET", "/v1/audit", params={"format": "jsonl", "limit": "9"})
    assert len(body.decode().splitlines()) == 9
    # nothing matches: an empty, well-formed stream
    response, body = await api.call("GET", "/v1/audit", params={"format": "jsonl", "role": "nothing"})
    assert response.status == 200 and body == b""


async def test_bad_parameters_are_problems_naming_the_parameter(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    await record_issued(store, OPS, began=NOW)
    api: Api = await make_api(store)
    cases = [
        ("/v1/tokens", {"limit": "0"}, "limit"),
        ("/v1/tokens", {"limit": "1001"}, "limit"),
        ("/v1/tokens", {"limit": "many"}, "limit"),
        ("/v1/tokens", {"state": "lost"}, "state"),
        ("/v1/tokens", {"active": "perhaps"}, "active"),
        ("/v1/tokens", {"since": "yesterday"}, "since"),
        ("/v1/tokens", {"until": "2024-05-01T12:00:00"}, "until"),
        ("/v1/tokens", {"namespace": "Not_A_Namespace"}, "namespace"),
        ("/v1/tokens", {"namepsace": "ci"}, "namepsace"),
        ("/v1/tokens", {"format": "csv"}, "format"),
        ("/v1/tokens", {"since": "2024-05-02T00:00:00Z", "until": "2024-05-01T00:00:00Z"}, "until"),
        ("/v1/audit", {"event": "pending"}, "event"),
        ("/v1/audit", {"active": "true"}, "active"),
        ("/v1/audit", {"state": "issued"}, "state"),
    ]
    for path, params, name in cases:
        response, body = await api.call("GET", path, params=params)
        doc = assert_problem(response, body, 422)
        assert name in doc["detail"], (params, doc)
        assert any(e["field"] == name for e in doc["errors"]), doc
    response, body = await api.call("GET", "/v1/tokens?role=a&role=b")
    assert "role" in assert_problem(response, body, 422)["detail"]

    for cursor in ("garbage!", "aTox", "x" * 600):
        response, body = await api.call("GET", "/v1/tokens", params={"cursor": cursor})
        assert "cursor" in assert_problem(response, body, 400)["detail"]
    # a cursor of one listing is not one of the other
    await asyncio.gather(*(record_issued(store, OPS, began=NOW - timedelta(seconds=i + 1)) for i in range(3)))
    cursor = (await api.get_json("/v1/tokens", limit="1"))["next_cursor"]
    assert cursor is not None
    response, body = await api.call("GET", "/v1/audit", params={"cursor": cursor})
    assert_problem(response, body, 400)
    response, body = await api.call("GET", "/v1/tokens", params={"cursor": cursor, "format": "jsonl"})
    assert response.status == 200  # the cursor is the token listing's own: the export continues from it
    assert len(body.decode().splitlines()) == 3


async def test_callers_must_authenticate_and_a_missing_store_is_503(
    store: SqlAuditStore, make_api: Callable[..., Any]
) -> None:
    api: Api = await make_api(store)
    for method, path in (("GET", "/v1/tokens"), ("GET", "/v1/audit"), ("DELETE", "/v1/tokens/x")):
        response, body = await api.call(method, path, who=None)
        assert_problem(response, body, 401)
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    response, body = await api.call("POST", "/v1/introspect", who=None, json_body={"token": "a.b.c"})
    assert_problem(response, body, 401)

    bare: Api = await make_api(None)
    for method, path, body_json in (
        ("GET", "/v1/tokens", None),
        ("GET", "/v1/audit", None),
        ("DELETE", "/v1/tokens/x", None),
        ("POST", "/v1/introspect", {"token": "a.b.c"}),
    ):
        response, body = await bare.call(method, path, json_body=body_json)
        assert assert_problem(response, body, 503)["detail"] == "audit store not configured"
        assert int(response.headers["Retry-After"]) > 0


async def test_a_store_that_is_down_is_503(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    api: Api = await make_api(store)
    await store.close()
    response, body = await api.call("GET", "/v1/tokens")
    assert_problem(response, body, 503)
    response, body = await api.call("GET", "/v1/audit", params={"format": "jsonl"})
    assert_problem(response, body, 503)


def test_query_vocabulary_matches_the_store() -> None:
    assert set(get_args(IssuanceState)) == EVENTS - {"denied"}
    assert set(get_args(LogEvent)) == LOG_EVENTS


async def test_openapi_documents_the_operations(store: SqlAuditStore, make_api: Callable[..., Any]) -> None:
    api: Api = await make_api(store)
    doc = await api.get_json("/openapi.json")
    paths = doc["paths"]
    assert {"get"} <= set(paths["/v1/tokens"]) and "delete" in paths["/v1/tokens/{token_id}"]
    assert "get" in paths["/v1/audit"] and "post" in paths["/v1/introspect"]
    params = {p["name"] for p in paths["/v1/tokens"]["get"]["parameters"]}
    assert {"caller", "role", "namespace", "cluster", "state", "active", "since", "until", "limit", "cursor",
            "format", "jti", "token_id"} <= params  # fmt: skip
    assert "event" in {p["name"] for p in paths["/v1/audit"]["get"]["parameters"]}
    listing = paths["/v1/tokens"]["get"]["responses"]["200"]["content"]
    assert listing["application/json"]["schema"] == {"$ref": "#/components/schemas/IssuanceList"}
    assert "application/x-ndjson" in listing
    assert set(doc["components"]["schemas"]["IssuanceView"]["properties"]) == ITEM_KEYS
    revoke = paths["/v1/tokens/{token_id}"]["delete"]
    assert {"204", "404", "409", "502", "503"} <= set(revoke["responses"])
    assert revoke["parameters"][1]["in"] == "path"
    introspect = paths["/v1/introspect"]["post"]
    assert introspect["requestBody"]["content"]["application/json"]["schema"] == {
        "$ref": "#/components/schemas/IntrospectionRequest"
    }
