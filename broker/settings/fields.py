"""The field types of config.toml and their checks: each value is validated where it is declared, with a message
that names what is wrong (the key path is added by load.py)."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from types import MappingProxyType
from typing import Annotated, Any
from urllib.parse import urlsplit

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    PlainSerializer,
    StrictStr,
)
from pydantic_core import PydanticCustomError

from broker._kits.durations import parse_duration
from broker._kits.jwt import ALLOWED_ALGORITHMS
from broker._kits.labelselector import parse_label_selector
from broker._kits.names import (
    is_dns1123_subdomain,
    is_label_value,
    is_qualified_name,
    namespace_pattern_problem,
)

from .paths import resolve_config_path

# the error type of a model validator that reports several problems at once (load.py unpacks it)
PROBLEMS = "config_problems"


def raise_problems(problems: Sequence[tuple[str, str]]) -> None:
    """Report several problems from one model validator; `key` is relative to the model being validated."""
    if problems:
        summary = "; ".join(f"{k}: {m}" if k else m for k, m in problems)
        raise PydanticCustomError(PROBLEMS, "{summary}", {"summary": summary, "problems": list(problems)})


def short(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 40 else text[:39] + "…"


def _duration(value: Any) -> int:
    return parse_duration(value)


def _nonempty_path(value: Any) -> Any:
    if isinstance(value, str) and not value.strip():
        raise ValueError("path must not be empty")
    return value


def _printable(value: str) -> str:
    if not value:
        raise ValueError("must not be empty")
    if value != value.strip() or any(not ch.isprintable() for ch in value):
        raise ValueError("must not have surrounding spaces or control characters")
    if len(value) > 256:
        raise ValueError("must be at most 256 characters")
    return value


def _resource_name(value: str) -> str:
    if not is_dns1123_subdomain(value):
        raise ValueError(f"{value!r} is not a valid name (lower-case DNS-1123 subdomain: a-z, 0-9, '-', '.')")
    return value


def _role_ref(value: str) -> str:
    return value if value == "*" else _resource_name(value)


def _service_account_name(value: str) -> str:
    if not is_dns1123_subdomain(value):
        raise ValueError(f"{value!r} is not a valid service account name (a DNS-1123 subdomain)")
    return value


def _namespace_pattern(value: str) -> str:
    problem = namespace_pattern_problem(value)
    if problem:
        raise ValueError(problem)
    return value


def _audience(value: str) -> str:
    if not value or any(ch.isspace() or not ch.isprintable() for ch in value):
        raise ValueError("an audience must be a non-empty string without spaces")
    return value


def _sha256_hex(value: str) -> str:
    if re.fullmatch(r"[0-9a-fA-F]{64}", value) is None:
        raise ValueError('must be the 64 hex digits of a SHA-256 digest (printf %s "$KEY" | sha256sum)')
    return value.lower()


def _url(value: str) -> str:
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise ValueError(f"{value!r} is not an http(s) URL")
    return value


def _issuer(value: str) -> str:
    if not value or any(ch.isspace() for ch in value):
        raise ValueError("issuer must be a non-empty string without spaces")
    return value


def _loopback_host(host: str | None) -> bool:
    return host in ("localhost", "127.0.0.1", "::1") or (host or "").startswith("127.")


def _trusted_url(value: str) -> str:
    """An issuer or key URL a caller's identity rests on: https, or http on loopback only (tests, sidecars)."""
    _url(value)
    parts = urlsplit(value)
    if parts.scheme != "https" and not _loopback_host(parts.hostname):
        raise ValueError(f"{value!r} must be an https URL (plain http is accepted only on loopback)")
    if parts.query or parts.fragment:
        raise ValueError(f"{value!r} must not carry a query or fragment")
    return value


def _algorithm(value: str) -> str:
    if value.upper().startswith("HS") or value.lower() == "none":
        raise ValueError(
            f"{value!r} is refused: only asymmetric signatures are accepted ({', '.join(ALLOWED_ALGORITHMS)})"
        )
    if value not in ALLOWED_ALGORITHMS:
        raise ValueError(f"{value!r} is not one of {', '.join(ALLOWED_ALGORITHMS)}")
    return value


def _claim_name(value: str) -> str:
    _printable(value)
    return value


def _claim_values(value: Any) -> tuple[str, ...]:
    """A bound claim's accepted values: a string, or a list of them. A TOML boolean or integer is taken in its
    JSON form (true → "true"), the form a token's non-string claim is compared in."""
    items = value if isinstance(value, list | tuple) else [value]
    if not items:
        raise ValueError("a bound claim needs at least one accepted value")
    out: list[str] = []
    for item in items:
        if isinstance(item, bool):
            out.append("true" if item else "false")
        elif isinstance(item, int):
            out.append(str(item))
        elif isinstance(item, str):
            if not item:
                raise ValueError("a bound claim value must not be empty")
            out.append(item)
        else:
            raise ValueError(f"a bound claim value must be a string, got {short(item)}")
    return tuple(dict.fromkeys(out))


def _bound_claims(value: Mapping[str, tuple[str, ...]]) -> Mapping[str, tuple[str, ...]]:
    return MappingProxyType(dict(value))


def split_host_port(value: str) -> tuple[str, int]:
    """ "127.0.0.1:8443" → ("127.0.0.1", 8443); "[::1]:8443" → ("::1", 8443). ValueError when malformed."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^\s:\[\]]+):([0-9]{1,5})", value)
    if m is None:
        raise ValueError(f'{value!r} is not "host:port" (IPv6 as "[::1]:8443")')
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


def _host_port(value: str) -> str:
    split_host_port(value)
    return value


def _labels(value: Mapping[str, str]) -> Mapping[str, str]:
    for key, val in value.items():
        if not is_qualified_name(key):
            raise ValueError(f"{key!r} is not a valid label key")
        if not is_label_value(val):
            raise ValueError(f"{val!r} (label {key!r}) is not a valid label value")
    return MappingProxyType(dict(value))


def _annotations(value: Mapping[str, str]) -> Mapping[str, str]:
    for key in value:
        if not is_qualified_name(key):
            raise ValueError(f"{key!r} is not a valid annotation key")
    return MappingProxyType(dict(value))


def _selector(value: str | None) -> str | None:
    if value is None or not value.strip():
        return None
    parse_label_selector(value)
    return value


Duration = Annotated[int, BeforeValidator(_duration)]
ConfigPath = Annotated[Path, BeforeValidator(_nonempty_path), AfterValidator(resolve_config_path)]
Name = Annotated[StrictStr, AfterValidator(_resource_name)]
RoleRef = Annotated[StrictStr, AfterValidator(_role_ref)]
Principal = Annotated[StrictStr, AfterValidator(_printable)]
NamespacePattern = Annotated[StrictStr, AfterValidator(_namespace_pattern)]
Audience = Annotated[StrictStr, AfterValidator(_audience)]
Url = Annotated[StrictStr, AfterValidator(_url)]
HostPort = Annotated[StrictStr, AfterValidator(_host_port)]
PositiveFloat = Annotated[float, Field(gt=0, strict=True)]
NonNegativeFloat = Annotated[float, Field(ge=0, strict=True)]
TrustedUrl = Annotated[StrictStr, AfterValidator(_trusted_url)]
SigningAlgorithm = Annotated[StrictStr, AfterValidator(_algorithm)]
ClaimName = Annotated[StrictStr, AfterValidator(_claim_name)]
_FrozenMapping = PlainSerializer(lambda m: dict(m), return_type=dict[str, str])
Labels = Annotated[Mapping[StrictStr, StrictStr], AfterValidator(_labels), _FrozenMapping]
Annotations = Annotated[Mapping[StrictStr, StrictStr], AfterValidator(_annotations), _FrozenMapping]
BoundClaims = Annotated[
    Mapping[ClaimName, Annotated[tuple[str, ...], BeforeValidator(_claim_values)]],
    AfterValidator(_bound_claims),
    PlainSerializer(lambda m: {k: list(v) for k, v in m.items()}, return_type=dict[str, list[str]]),
]


def empty_mapping() -> Mapping[str, str]:
    return MappingProxyType({})


class Section(BaseModel):
    """Every table of config.toml: frozen, and a key it does not know is an error."""

    model_config = ConfigDict(frozen=True, extra="forbid")
