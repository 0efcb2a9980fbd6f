"""The wire formats: every OCSF event validates against the published OCSF 1.5.0 schema (ocsf-json-schema's
bundled export, checked with jsonschema's Draft 2020-12 validator); CloudEvents parse back with the SDK."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any, get_args

import pytest
from cloudevents.core.formats.json import JSONFormat
from pydantic import ValidationError
from sinks_support import ocsf_errors, ocsf_validator

from broker import metric_labels
from broker.audit import SecretBinding
from broker.audit.chain import GENESIS, ChainedEvent, emitted_hash, link_hash
from broker.audit.records import AuditRecord
from broker.audit.sinks import FailureKind
from broker.audit.sinks.formats import CloudEventsFormat, OcsfFormat, encode_batch
from broker.audit.sinks.formats.ocsf import OCSF_VERSION, to_ocsf
from broker.settings import AuditSettings

T0 = datetime(2030, 1, 1, 12, 0, 0, 123456, tzinfo=UTC)


def record(event: str, **kw: Any) -> AuditRecord:
    fields: dict[str, Any] = {
        "id": str(uuid.uuid4()),
        "event_id": str(uuid.uuid4()),
        "time": T0,
        "event": event,
        "caller_user": "jenkins",
        "caller_method": "mtls",
        "caller_groups": ("ci", "team-a"),
        "source_address": "10.1.2.3",
        "user_agent": "curl/8.5",
        "role": "deployer",
        "cluster": "prod",
        "namespace": "team-a",
        "service_account": "tb-deployer",
        "audiences": ("https://kubernetes.default.svc",),
        "ttl_requested": 900,
        "request_id": "req-7",
        "context": {"job": "deploy"},
    }
    if event in ("issued", "revoked", "expired"):
        fields |= {
            "jti": str(uuid.uuid4()),
            "token_sha256": "ab" * 32,
            "issued_at": T0,
            "expires_at": T0 + timedelta(minutes=15),
            "ttl_granted": 900,
            "bound_secret": SecretBinding("team-a", "tb-x", "uid-1"),
            "status": 201,
        }
    fields.update(kw)
    return AuditRecord(**fields)


def chained(rec: AuditRecord, seq: int = 7) -> ChainedEvent:
    return ChainedEvent(seq, GENESIS, link_hash(rec, seq, GENESIS), rec)


CASES = {
    "issued": record("issued"),
    "denied by policy": record("denied", reason="no grant gives role deployer", status=403),
    "authentication failure": record("denied", reason="certificate not trusted", status=401, role=""),
    "failed upstream": record("failed", reason="API server 503", status=502),
    "aborted at start-up": record("aborted", reason="repaired at start-up"),
    "revoked": record("revoked", revoked_by="ops", revoked_at=T0, reason="leaked in a log"),
    "expired": record("expired"),
    "oidc caller, no address": record("issued", caller_method="oidc", source_address=""),
    "legacy token without exp": record("issued", expires_at=None, ttl_granted=None),
}


@pytest.mark.parametrize("case", CASES)
def test_ocsf_events_validate_against_the_schema(case: str) -> None:
    event = chained(CASES[case])
    document = json.loads(OcsfFormat("1.2.3").encode(event))
    assert ocsf_errors(document) == []
    assert document["class_uid"] == 3002 and document["metadata"]["version"] == OCSF_VERSION
    assert document["type_uid"] == 300200 + document["activity_id"]
    # the chain can be checked from the OCSF stream too
    assert emitted_hash(json.loads(document["raw_data"])) == event.hash


def test_the_validator_is_not_lenient() -> None:
    document = to_ocsf(chained(CASES["issued"]), "1.2.3")
    assert not list(ocsf_validator().iter_errors(document))
    for broken in (
        {**document, "activity_id": 77},
        {**document, "session": {"uid": 5}},
        {**document, "not_an_ocsf_attribute": 1},
        {k: v for k, v in document.items() if k != "user"},
    ):
        assert list(ocsf_validator().iter_errors(broken))


@pytest.mark.parametrize(
    ("case", "activity", "status"),
    [
        ("issued", 4, 1),
        ("denied by policy", 4, 2),
        ("authentication failure", 1, 2),
        ("failed upstream", 4, 2),
        ("revoked", 2, 1),
        ("expired", 2, 1),
    ],
)
def test_ocsf_activities(case: str, activity: int, status: int) -> None:
    document = to_ocsf(chained(CASES[case]), "1.2.3")
    assert (document["activity_id"], document["status_id"]) == (activity, status)


def test_ocsf_field_mapping() -> None:
    rec = CASES["revoked"]
    document = to_ocsf(chained(rec, seq=42), "1.2.3")
    assert document["user"] == {
        "name": "jenkins",
        "type_id": 1,
        "type": "User",
        "groups": [{"name": "ci"}, {"name": "team-a"}],
    }
    assert document["service"] == {"name": "system:serviceaccount:team-a:tb-deployer", "uid": "prod"}
    assert document["session"]["uid"] == rec.id and document["session"]["credential_uid"] == rec.jti
    assert document["session"]["expiration_reason"] == "revoked by ops: leaked in a log"
    assert document["metadata"]["uid"] == rec.event_id and document["metadata"]["sequence"] == 42
    assert document["time"] == int(T0.timestamp() * 1000)
    assert document["src_endpoint"] == {"ip": "10.1.2.3"}
    assert document["unmapped"]["token_sha256"] == "ab" * 32
    assert document["unmapped"]["chain"]["seq"] == 42


def test_cloudevents_structured_mode_round_trips_through_the_sdk() -> None:
    rec = CASES["issued"]
    event = chained(rec, seq=9)
    fmt = CloudEventsFormat("/kube-token-broker/prod")
    parsed = JSONFormat().read(None, fmt.encode(event))
    assert parsed.get_specversion() == "1.0"
    assert parsed.get_id() == rec.event_id and parsed.get_subject() == rec.id
    assert parsed.get_type() == "io.kube-token-broker.audit.issued.v1"
    assert parsed.get_source() == "/kube-token-broker/prod"
    assert parsed.get_time() == T0
    assert parsed.get_extension("sequence") == "00000000000000000009"
    data = parsed.get_data()
    assert data == event.as_dict() and isinstance(data, dict)
    assert emitted_hash(data) == event.hash


def test_a_batch_is_a_json_array() -> None:
    events = [chained(CASES["issued"], 1), chained(CASES["expired"], 2)]
    body = json.loads(encode_batch(CloudEventsFormat("/x"), events))
    assert [e["sequence"] for e in body] == ["00000000000000000001", "00000000000000000002"]
    assert CloudEventsFormat("/x").batch_content_type == "application/cloudevents-batch+json"


@pytest.mark.parametrize(
    ("sinks", "problem"),
    [
        ([{"kind": "file", "name": "a", "path": "x"}, {"kind": "file", "name": "a", "path": "y"}], "unique"),
        ([{"kind": "webhook", "name": "w", "url": "http://siem.example/in"}], "https"),
        (
            [
                {
                    "kind": "webhook",
                    "name": "w",
                    "url": "https://s/in",
                    "headers": {"Authorization": "Bearer x"},
                }
            ],
            "bearer_token_file",
        ),
        ([{"kind": "syslog", "name": "s", "address": "siem.example"}], "host:port"),
        ([{"kind": "syslog", "name": "s", "address": "h:514", "app_name": "two words"}], "printable"),
        ([{"kind": "kafka", "name": "k"}], "kind"),
        ([{"kind": "file", "name": "Bad Name", "path": "x"}], "a-z"),
    ],
)
def test_sink_settings_are_checked(sinks: list[dict[str, Any]], problem: str) -> None:
    with pytest.raises(ValidationError, match=problem):
        AuditSettings.model_validate({"sinks": sinks})


def test_several_sinks_at_once() -> None:
    settings = AuditSettings.model_validate(
        {
            "sinks": [
                {"kind": "syslog", "name": "siem", "address": "[::1]:6514", "tls": True, "format": "ocsf"},
                {"kind": "webhook", "name": "hook", "url": "https://hooks.example/audit"},
                {"kind": "file", "name": "local", "path": "/var/log/tb.jsonl"},
            ]
        }
    )
    assert [s.kind for s in settings.sinks] == ["syslog", "webhook", "file"]


def test_the_failure_kinds_are_the_metrics_vocabulary() -> None:
    assert {k.value for k in FailureKind} == set(get_args(metric_labels.SinkFailureKind))
