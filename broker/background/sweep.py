"""What a janitor sweep did, as its steps count it."""

from __future__ import annotations

from dataclasses import dataclass, field

from broker.domain.records import AuditRecord


@dataclass(frozen=True)
class SweepResult:
    """What one sweep did; `leader` False means this replica was not the leader and did nothing."""

    leader: bool
    deleted_secrets: int = 0
    expired: int = 0
    # records whose Secret could not be deleted (left for the next sweep) and failed store steps
    failed: int = 0
    deleted_service_accounts: int = 0
    repaired: int = 0
    retention_deleted: int = 0
    # leadership ran out mid-sweep: the rest is left to whoever leads next
    interrupted: bool = False
    # monotonic clock: when the sweep began and ended
    started: float = 0.0
    finished: float = 0.0


@dataclass
class Tally:
    deleted_secrets: int = 0
    expired: int = 0
    failed: int = 0
    deleted_service_accounts: int = 0
    repaired: int = 0
    retention_deleted: int = 0
    interrupted: bool = False
    # the issuances this sweep ended (their ephemeral service accounts may go with them)
    ended: list[AuditRecord] = field(default_factory=list)
