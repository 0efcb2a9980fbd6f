"""How an event is written on the wire: CloudEvents 1.0 (structured JSON) or OCSF (Authentication, 3002)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Protocol

from broker.audit.chain import ChainedEvent
from broker.domain.streams import Format

from .cloudevents import CloudEventsFormat
from .ocsf import OcsfFormat


class EventFormat(Protocol):
    # Content-Type of one event, and of a JSON array of them (a webhook batch)
    content_type: str
    batch_content_type: str

    def encode(self, event: ChainedEvent) -> bytes:
        """One event as one line of JSON (UTF-8, no newline in it)."""
        ...


def make_format(name: Format, *, source: str, product_version: str) -> EventFormat:
    if name == "ocsf":
        return OcsfFormat(product_version)
    return CloudEventsFormat(source)


def encode_batch(fmt: EventFormat, events: Sequence[ChainedEvent]) -> bytes:
    """A JSON array of the events (CloudEvents' batched content mode, or an array of OCSF events)."""
    return b"[" + b",".join(fmt.encode(e) for e in events) + b"]"


__all__ = ["CloudEventsFormat", "EventFormat", "OcsfFormat", "encode_batch", "make_format"]
