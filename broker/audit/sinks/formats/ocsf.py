"""OCSF 1.5.0: every decision is an Authentication event (class 3002, category Identity & Access Management).

Why one class: a SIEM finds a token's whole life with one query, and OCSF's Authentication class already has
the places for it — `user` (who asked), `service` (what the credential is for), `session` (the credential:
uid = token id, credential_uid = jti, created and expiration times, why it ended) and `authentication_token`.

    issued            activity 4 Service Ticket Request   status Success   severity Informational
    denied (policy)   activity 4 Service Ticket Request   status Failure   severity Medium
    failed, aborted   activity 4 Service Ticket Request   status Failure   severity Low
    denied, 401       activity 1 Logon                    status Failure   severity Medium   (authentication failure)
    revoked           activity 2 Logoff                   status Success   severity Low      (ended early)
    expired           activity 2 Logoff                   status Success   severity Informational

`raw_data` holds the event as the JSON-lines export has it (with seq, prev_hash and hash), so the chain can
be checked from the OCSF stream too; broker-specific fields are also under `unmapped`. README: field mapping.
"""

from __future__ import annotations

import ipaddress
import json
from datetime import datetime
from typing import Any, Final

from broker._kits.rfc3339 import format_time
from broker.audit.chain import ChainedEvent, canonical
from broker.audit.records import AuditRecord

OCSF_VERSION: Final = "1.5.0"
CLASS_UID: Final = 3002
CATEGORY_UID: Final = 3
LOGON, LOGOFF, SERVICE_TICKET_REQUEST = 1, 2, 4
_ACTIVITY_NAMES = {LOGON: "Logon", LOGOFF: "Logoff", SERVICE_TICKET_REQUEST: "Service Ticket Request"}
SUCCESS, FAILURE = 1, 2
INFORMATIONAL, LOW, MEDIUM = 1, 2, 3
_SEVERITY_NAMES = {INFORMATIONAL: "Informational", LOW: "Low", MEDIUM: "Medium"}
# how the caller proved who it is → OCSF auth_protocol_id (99: Other, named in auth_protocol)
_PROTOCOLS = {"oidc": (4, "OpenID"), "mtls": (99, "TLS client certificate"), "api_key": (99, "API key")}
_TOKEN_TYPE = "Kubernetes service account token"


def _millis(moment: datetime | None) -> int | None:
    return None if moment is None else int(moment.timestamp() * 1000)


def _classify(record: AuditRecord) -> tuple[int, int, int]:
    """(activity_id, status_id, severity_id)"""
    if record.event == "issued":
        return SERVICE_TICKET_REQUEST, SUCCESS, INFORMATIONAL
    if record.event == "revoked":
        return LOGOFF, SUCCESS, LOW
    if record.event == "expired":
        return LOGOFF, SUCCESS, INFORMATIONAL
    if record.event == "denied":
        return (LOGON if record.status == 401 else SERVICE_TICKET_REQUEST), FAILURE, MEDIUM
    return SERVICE_TICKET_REQUEST, FAILURE, LOW


def _principal(record: AuditRecord) -> str:
    if record.namespace and record.service_account:
        return f"system:serviceaccount:{record.namespace}:{record.service_account}"
    return record.service_account or record.role


def _message(record: AuditRecord) -> str:
    target = _principal(record) or "a token"
    where = f" on cluster {record.cluster}" if record.cluster else ""
    verbs = {
        "issued": "obtained a token for",
        "denied": "was refused a token for",
        "failed": "did not get a token (upstream failure) for",
        "aborted": "did not get a token (interrupted) for",
        "revoked": "had its token revoked for",
        "expired": "had its expired token cleaned up for",
    }
    return (
        f"{record.caller_user} {verbs.get(record.event, record.event)} {target} (role {record.role}){where}"
    )


def _drop_none(value: dict[str, Any]) -> dict[str, Any]:
    return {k: v for k, v in value.items() if v is not None and v != {} and v != []}


def _session(record: AuditRecord) -> dict[str, Any]:
    reason = None
    if record.event == "revoked":
        reason = f"revoked by {record.revoked_by}" + (f": {record.reason}" if record.reason else "")
    elif record.event == "expired":
        reason = "expired"
    return _drop_none(
        {
            "uid": record.id,
            "credential_uid": record.jti,
            "created_time": _millis(record.issued_at),
            "expiration_time": _millis(record.revoke_at or record.expires_at),
            "issuer": record.cluster or None,
            "expiration_reason": reason,
        }
    )


def _src_endpoint(record: AuditRecord) -> dict[str, Any] | None:
    try:
        return {"ip": str(ipaddress.ip_address(record.source_address))}
    except ValueError:
        return None


def _unmapped(event: ChainedEvent) -> dict[str, Any]:
    r = event.record
    secret = r.bound_secret
    return _drop_none(
        {
            "role": r.role,
            "namespace": r.namespace,
            "service_account": r.service_account,
            "audiences": list(r.audiences),
            "ttl_requested": r.ttl_requested,
            "ttl_granted": r.ttl_granted,
            "token_sha256": r.token_sha256,
            "bound_secret": None if secret is None else f"{secret.namespace}/{secret.name}",
            "context": dict(r.context),
            "request_id": r.request_id or None,
            "chain": {"seq": event.seq, "prev_hash": event.prev_hash, "hash": event.hash},
        }
    )


def to_ocsf(event: ChainedEvent, product_version: str) -> dict[str, Any]:
    r = event.record
    protocol_id, protocol = _PROTOCOLS.get(r.caller_method, (99, r.caller_method or "unknown"))
    document: dict[str, Any] = {
        "class_uid": CLASS_UID,
        "class_name": "Authentication",
        "category_uid": CATEGORY_UID,
        "category_name": "Identity & Access Management",
        **_outcome(r),
        "time": _millis(r.time),
        "message": _message(r),
        "metadata": _metadata(event, product_version),
        **_principals(r),
        "auth_protocol_id": protocol_id,
        "auth_protocol": protocol,
        "src_endpoint": _src_endpoint(r),
        "http_request": _drop_none({"user_agent": r.user_agent or None, "uid": r.request_id or None}),
        "is_remote": True,
        "raw_data": canonical(event.as_dict()).decode("ascii"),
        "unmapped": _unmapped(event),
    }
    return _drop_none(document)


def _outcome(r: AuditRecord) -> dict[str, Any]:
    activity, status, severity = _classify(r)
    return {
        "activity_id": activity,
        "activity_name": _ACTIVITY_NAMES[activity],
        "type_uid": CLASS_UID * 100 + activity,
        "type_name": f"Authentication: {_ACTIVITY_NAMES[activity]}",
        "severity_id": severity,
        "severity": _SEVERITY_NAMES[severity],
        "status_id": status,
        "status": "Success" if status == SUCCESS else "Failure",
        "status_code": None if r.status is None else str(r.status),
        "status_detail": r.reason or None,
    }


def _metadata(event: ChainedEvent, product_version: str) -> dict[str, Any]:
    r = event.record
    return {
        "version": OCSF_VERSION,
        "product": {
            "name": "kube-token-broker",
            "vendor_name": "kube-token-broker",
            "version": product_version,
        },
        "uid": r.event_id,
        "correlation_uid": r.id,
        "sequence": event.seq,
        "event_code": r.event,
        "log_name": "audit",
        "original_time": format_time(r.time, "microseconds"),
    }


def _principals(r: AuditRecord) -> dict[str, Any]:
    """Who authenticated, as whom the token acts, and the token itself."""
    user = {
        "name": r.caller_user,
        "type_id": 1,
        "type": "User",
        "groups": [{"name": g} for g in r.caller_groups],
    }
    token = {
        "type_id": 99,
        "type": _TOKEN_TYPE,
        "created_time": _millis(r.issued_at),
        "expiration_time": _millis(r.revoke_at or r.expires_at),
    }
    return {
        "user": _drop_none(user),
        "service": _drop_none({"name": _principal(r) or None, "uid": r.cluster or None}),
        "session": _session(r),
        "authentication_token": _drop_none(token),
    }


class OcsfFormat:
    content_type = "application/json"
    batch_content_type = "application/json"

    def __init__(self, product_version: str) -> None:
        self._version = product_version

    def encode(self, event: ChainedEvent) -> bytes:
        return json.dumps(to_ocsf(event, self._version), separators=(",", ":"), ensure_ascii=False).encode()
