"""How long a token lives and for whom, once the caller may have the role: ttl (refused above the cap, never
shortened; below the 10 minute TokenRequest floor only on a revocable role) and audiences."""

from __future__ import annotations

from collections.abc import Sequence

from broker._kits.durations import format_duration
from broker.domain.errors import ErrorKind
from broker.domain.floors import TOKEN_REQUEST_MIN_SECONDS
from broker.domain.identity import Caller

from .compiled import CompiledGrant, CompiledRole, invalid, quote, who


def refuse_legacy_options(
    caller: Caller, role: CompiledRole, grant: CompiledGrant, ttl: int | None, audiences: Sequence[str] | None
) -> None:
    name = role.role.name
    if ttl is not None:
        raise invalid(
            ErrorKind.TTL,
            f"role {quote(name)} issues legacy Secret tokens, which do not expire: omit ttl",
            f"ttl {ttl} asked for legacy-secret role {name!r} by {who(caller)} (grant {grant.name})",
        )
    if audiences:
        raise invalid(
            ErrorKind.AUDIENCE,
            f"role {quote(name)} issues legacy Secret tokens, which carry no audience: omit audiences",
            f"audiences {list(audiences)!r} asked for legacy-secret role {name!r} by {who(caller)}",
        )


def lifetime(
    caller: Caller, compiled: CompiledRole, grant: CompiledGrant, ttl: int | None
) -> tuple[int, int, int | None]:
    """(ttl, seconds to ask TokenRequest for, revoke after) for a token-request role."""
    role = compiled.role
    cap = grant.cap(role)
    capped_by = f"grant {grant.name}" if cap < role.max_ttl else f"role {role.name!r} max_ttl"
    if ttl is None:
        ttl = min(role.default_ttl, cap)
        asked = "the default ttl"
    else:
        asked = "ttl"
        if ttl <= 0:
            raise invalid(ErrorKind.TTL, "ttl must be positive", f"ttl {ttl} from {who(caller)}")
        if ttl > cap:
            raise invalid(
                ErrorKind.TTL,
                f"ttl {format_duration(ttl)} exceeds the maximum of {format_duration(cap)} "
                f"for role {quote(role.name)}",
                f"ttl {ttl}s above the {cap}s cap of {capped_by} (grant {grant.name}, {who(caller)})",
            )
    if ttl >= TOKEN_REQUEST_MIN_SECONDS:
        return ttl, ttl, None
    if not role.revocable:
        raise invalid(
            ErrorKind.TTL,
            f"{asked} {format_duration(ttl)} is below the 10m minimum of the Kubernetes TokenRequest API "
            f"(role {quote(role.name)} is not revocable)",
            f"ttl {ttl}s below 600s on non-revocable role {role.name!r} (grant {grant.name}, {who(caller)})",
        )
    # Kubernetes refuses expirationSeconds < 600 (422, never clamped): ask for 600, revoke at the ttl.
    return ttl, TOKEN_REQUEST_MIN_SECONDS, ttl


def audiences_for(caller: Caller, compiled: CompiledRole, audiences: Sequence[str] | None) -> tuple[str, ...]:
    role = compiled.role
    if not audiences:
        return role.default_audiences
    asked = tuple(dict.fromkeys(audiences))
    for audience in asked:
        if audience not in compiled.audiences:
            raise invalid(
                ErrorKind.AUDIENCE,
                f"audience {quote(audience)} is not allowed for role {quote(role.name)}",
                f"audience {audience!r} outside {sorted(compiled.audiences)!r} of role {role.name!r} "
                f"({who(caller)})",
            )
    return asked
