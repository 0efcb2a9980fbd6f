"""Walk the hash chain and report the first break (`token-broker audit verify`).

The walk starts at the anchor (where retention left the chain) and follows seq 1 by 1 to the head, recomputing
every hash; then the signed checkpoints are checked against the hashes it saw. What each kind of tampering
looks like:

* an edited row: its content no longer hashes to its `hash` (EDITED);
* a deleted row: a seq is missing (MISSING); the newest rows deleted: the head names a seq not there (HEAD);
* rows reordered or one inserted: a `prev_hash` that is not the previous event's hash (LINK), or a row
  outside the chain altogether (UNCHAINED);
* the whole chain rewritten from some point on, hashes recomputed: a signed checkpoint at or after that
  point no longer matches (CHECKPOINT); a forged checkpoint fails its signature (SIGNATURE).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from enum import StrEnum

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from .backend import Backend
from .chain import ChainedEvent, Link, link_hash, read_after, read_link
from .checkpoints import Checkpoint, read_checkpoints, signature_valid
from .rows import Codec

PAGE = 1000


class BreakKind(StrEnum):
    EDITED = "edited"
    MISSING = "missing"
    LINK = "link"
    HEAD = "head"
    UNCHAINED = "unchained"
    CHECKPOINT = "checkpoint"
    SIGNATURE = "signature"


_WHAT = {
    BreakKind.EDITED: "the event's content does not hash to its stored hash: edited",
    BreakKind.MISSING: "an event of the chain is missing: deleted",
    BreakKind.LINK: "prev_hash is not the previous event's hash: reordered, replaced or inserted",
    BreakKind.HEAD: "the chain head names an event that is not there: the newest events were deleted",
    BreakKind.UNCHAINED: "events outside the chain (no seq): inserted behind the broker's back",
    BreakKind.CHECKPOINT: "the chain differs from what a signed checkpoint recorded: rewritten",
    BreakKind.SIGNATURE: "a checkpoint's signature does not verify with the given key: forged",
}


@dataclass(frozen=True)
class Break:
    kind: BreakKind
    seq: int
    event_id: str | None = None

    @property
    def description(self) -> str:
        return _WHAT[self.kind]


@dataclass(frozen=True)
class Verification:
    anchor: Link
    head: Link
    # events walked (seq anchor+1 .. head, or up to the break)
    events: int
    # checkpoints stored; checked only when a public key was given
    checkpoints: int
    checkpoints_checked: int
    # checkpoints at or before the anchor: their events are gone (retention), nothing left to compare
    checkpoints_before_anchor: int
    first_break: Break | None

    @property
    def ok(self) -> bool:
        return self.first_break is None


class _Walk:
    def __init__(self, anchor: Link) -> None:
        self.seq = anchor.seq
        self.hash = anchor.hash
        self.count = 0
        self.seen: dict[int, str] = {anchor.seq: anchor.hash}

    def step(self, event: ChainedEvent, wanted: set[int]) -> Break | None:
        expected = self.seq + 1
        if event.seq != expected:
            return Break(BreakKind.MISSING, expected)
        if event.prev_hash != self.hash:
            return Break(BreakKind.LINK, event.seq, event.record.event_id)
        if link_hash(event.record, event.seq, event.prev_hash) != event.hash:
            return Break(BreakKind.EDITED, event.seq, event.record.event_id)
        self.seq, self.hash = event.seq, event.hash
        self.count += 1
        if event.seq in wanted:
            self.seen[event.seq] = event.hash
        return None


async def verify_chain(
    backend: Backend, public_keys: Sequence[Ed25519PublicKey] = (), *, page: int = PAGE
) -> Verification:
    codec = Codec(backend)
    anchor = await read_link(backend, "anchor")
    head = await read_link(backend, "head")
    checkpoints = await read_checkpoints(backend)
    wanted = {c.seq for c in checkpoints}
    walk = _Walk(anchor)
    found = await _walk(backend, codec, walk, head, wanted, page)
    if found is None:
        found = await _unchained(backend)
    checked, before = 0, 0
    if found is None and public_keys:
        found, checked, before = _check_checkpoints(checkpoints, public_keys, walk, anchor)
    return Verification(anchor, head, walk.count, len(checkpoints), checked, before, found)


async def _walk(
    backend: Backend, codec: Codec, walk: _Walk, head: Link, wanted: set[int], page: int
) -> Break | None:
    while True:
        events = await read_after(backend, codec, walk.seq, page)
        for event in events:
            found = walk.step(event, wanted)
            if found is not None:
                return found
        if len(events) < page:
            break
    if walk.seq < head.seq:
        return Break(BreakKind.HEAD, walk.seq + 1)
    if walk.seq > head.seq or walk.hash != head.hash:
        return Break(BreakKind.LINK, walk.seq)
    return None


async def _unchained(backend: Backend) -> Break | None:
    rows = await backend.fetch("SELECT event_id FROM events WHERE seq IS NULL LIMIT 1")
    return Break(BreakKind.UNCHAINED, 0, rows[0]["event_id"]) if rows else None


def _check_checkpoints(
    checkpoints: Sequence[Checkpoint], keys: Sequence[Ed25519PublicKey], walk: _Walk, anchor: Link
) -> tuple[Break | None, int, int]:
    checked = before = 0
    for checkpoint in checkpoints:
        if not signature_valid(checkpoint, keys):
            return Break(BreakKind.SIGNATURE, checkpoint.seq), checked, before
        if checkpoint.seq < anchor.seq:
            before += 1
            continue
        if walk.seen.get(checkpoint.seq) != checkpoint.hash:
            return Break(BreakKind.CHECKPOINT, checkpoint.seq), checked, before
        checked += 1
    return None, checked, before
