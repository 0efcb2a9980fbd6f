"""What a token did in the cluster: the requests the API server audited for it, joined to its issuance record
(broker/audit/correlate.py reads the kube-apiserver audit log into these)."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from .records import AuditRecord


@dataclass(frozen=True)
class KubeRequest:
    """One request the API server audited, as far as a token's history needs it."""

    audit_id: str
    time: datetime
    stage: str
    verb: str
    # "pods", "pods/log", "serviceaccounts/token" (resource/subresource); "" for a non-resource URL
    resource: str
    api_group: str
    namespace: str
    name: str
    # the response code (0 when the stage logged carries none)
    code: int
    request_uri: str
    username: str
    user_agent: str
    source_ips: tuple[str, ...]


@dataclass(frozen=True)
class TokenActivity:
    jti: str
    # the broker's issuance record; None when this broker did not issue the token (or retention removed it)
    issuance: AuditRecord | None
    # oldest first
    requests: tuple[KubeRequest, ...]
    # requests beyond max_requests for this token: counted, not kept
    dropped: int = 0
