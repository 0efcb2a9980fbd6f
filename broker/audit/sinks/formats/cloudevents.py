"""CloudEvents 1.0, structured JSON mode, through the CloudEvents SDK.

id       the event's event_id         type     io.kube-token-broker.audit.<event>.v1
source   the sink's `source`          subject  the token id (the issuance the event belongs to)
time     when the decision was made   sequence the chain's seq, 20 digits (the Sequence extension:
                                               lexical order = store order)
data     the event as the JSON-lines export has it, plus seq, prev_hash and hash: a receiver can
         recompute the hash (broker.audit.chain.emitted_hash) and follow the chain
"""

from __future__ import annotations

from typing import Final

from cloudevents.core.formats.json import JSONFormat
from cloudevents.core.v1.event import CloudEvent

from broker.audit.chain import ChainedEvent

TYPE_PREFIX: Final = "io.kube-token-broker.audit."


def event_type(event: str) -> str:
    return f"{TYPE_PREFIX}{event}.v1"


class CloudEventsFormat:
    content_type = JSONFormat.CONTENT_TYPE
    batch_content_type = "application/cloudevents-batch+json"

    def __init__(self, source: str) -> None:
        self._source = source
        self._json = JSONFormat()

    def cloudevent(self, event: ChainedEvent) -> CloudEvent:
        record = event.record
        attributes = {
            "specversion": "1.0",
            "id": record.event_id or record.id,
            "source": self._source,
            "type": event_type(record.event),
            "subject": record.id,
            "time": record.time,
            "datacontenttype": "application/json",
            "sequence": f"{event.seq:020d}",
        }
        return CloudEvent(attributes, event.as_dict())

    def encode(self, event: ChainedEvent) -> bytes:
        return self._json.write(self.cloudevent(event))
