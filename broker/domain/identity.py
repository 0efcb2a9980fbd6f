"""Who a caller is, once authenticated. Shared by callers/ (which build it) and policy (which judges it)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Caller:
    user: str
    groups: tuple[str, ...]
    # "mtls" | "api-key" | "oidc" | "kubernetes"
    method: str
    # verified token claims for OIDC callers (bound-claim grants); empty otherwise
    claims: Mapping[str, Any] = field(default_factory=dict)
