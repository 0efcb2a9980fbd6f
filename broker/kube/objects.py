"""Object names and references as the API server knows them: the small, frozen results of the resource calls
(plain dataclasses, no generated models), and the checks a name passes before it goes into a path."""

from __future__ import annotations

import datetime as dt
import re
import secrets
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from broker.domain.errors import BrokerError, unprocessable

# apimachinery validation: namespaces are DNS-1123 labels, most object names DNS-1123 subdomains
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?$")
_DNS_SUBDOMAIN = re.compile(r"^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$")
# names.SimpleNameGenerator's alphabet has no vowels (no accidental words); we draw more characters
_NAME_ALPHABET = "bcdfghjklmnpqrstvwxz2456789"
_NAME_SUFFIX = 10


def check_namespace(namespace: str) -> str:
    if len(namespace) > 63 or not _DNS_LABEL.match(namespace):
        raise unprocessable(f"{namespace!r} is not a valid namespace name")
    return namespace


def check_name(kind: str, name: str) -> str:
    if len(name) > 253 or not _DNS_SUBDOMAIN.match(name):
        raise unprocessable(f"{name!r} is not a valid {kind} name")
    return name


def namespace_missing(namespace: str) -> BrokerError:
    """What a 404 on creating something in a namespace means: the namespace itself does not exist."""
    return unprocessable(f'namespace "{namespace}" does not exist')


def random_name(prefix: str) -> str:
    suffix = "".join(secrets.choice(_NAME_ALPHABET) for _ in range(_NAME_SUFFIX))
    return prefix[: 253 - _NAME_SUFFIX] + suffix


def meta(body: Mapping[str, Any]) -> Mapping[str, Any]:
    found = body.get("metadata")
    return found if isinstance(found, dict) else {}


def delete_options(uid: str | None) -> dict[str, Any]:
    """DeleteOptions with a uid precondition when given: an object re-created under the same name is someone
    else's and stays."""
    body: dict[str, Any] = {"apiVersion": "v1", "kind": "DeleteOptions", "propagationPolicy": "Background"}
    if uid:
        body["preconditions"] = {"uid": uid}
    return body


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
