"""The small, frozen results of ClusterClient operations (plain dataclasses, no generated models)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


@dataclass(frozen=True)
class ServiceAccountRef:
    namespace: str
    name: str
    uid: str

    @property
    def subject(self) -> str:
        # serviceaccount.MakeUsername
        return f"system:serviceaccount:{self.namespace}:{self.name}"


@dataclass(frozen=True)
class SecretRef:
    namespace: str
    name: str
    uid: str


@dataclass(frozen=True)
class TokenResponse:
    """A TokenRequest's answer. `expiration_seconds` is what the server granted (its echoed spec), which is
    less than asked when --service-account-max-token-expiration capped it (then `warnings` says so)."""

    token: str = field(repr=False)
    expiration_timestamp: dt.datetime
    expiration_seconds: int
    warnings: tuple[str, ...] = ()


@dataclass(frozen=True)
class LegacyToken:
    """A token the token controller wrote into a `kubernetes.io/service-account-token` Secret; never expires."""

    token: str = field(repr=False)
    namespace: str
    secret_name: str
    secret_uid: str
    # the controller's `kubernetes.io/service-account.uid` annotation ("" until it filled the Secret)
    service_account_uid: str = ""
