"""The apiserver's audit log (--audit-log-path, JSON lines) read as the simulator's request log, so a test can
ask either backend which requests it served."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from urllib.parse import urlsplit

from kubesim.pipeline import AuditEvent

# kube-apiserver's verbs back to the HTTP methods the simulator records (request_info.go's mapping, reversed)
_METHODS = {
    "create": "POST",
    "update": "PUT",
    "patch": "PATCH",
    "delete": "DELETE",
    "deletecollection": "DELETE",
    "get": "GET",
    "list": "GET",
    "watch": "GET",
}


class AuditLogReader:
    """Reads the log incrementally: tests poll it every few milliseconds while it grows for a whole session."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._offset = 0
        self._events: list[AuditEvent] = []

    def events(self) -> list[AuditEvent]:
        """Every complete request in the log so far (stage ResponseComplete or Panic), oldest first."""
        try:
            with self.path.open("rb") as log:
                log.seek(self._offset)
                chunk = log.read()
        except FileNotFoundError:
            return []
        # only whole lines: the apiserver may be half-way through writing the last one
        complete = chunk[: chunk.rfind(b"\n") + 1]
        self._offset += len(complete)
        for line in complete.splitlines():
            raw = json.loads(line)
            if raw.get("stage") in ("ResponseComplete", "Panic"):
                self._events.append(_event(raw))
        return list(self._events)


def _event(raw: dict[str, object]) -> AuditEvent:
    uri = urlsplit(str(raw.get("requestURI", "")))
    user = raw.get("user") if isinstance(raw.get("user"), dict) else {}
    assert isinstance(user, dict)
    status = raw.get("responseStatus") if isinstance(raw.get("responseStatus"), dict) else {}
    assert isinstance(status, dict)
    verb = str(raw.get("verb", ""))
    stamp = str(raw.get("stageTimestamp") or raw.get("requestReceivedTimestamp") or "")
    return AuditEvent(
        timestamp=datetime.fromisoformat(stamp).timestamp() if stamp else 0.0,
        verb=verb,
        method=_METHODS.get(verb, verb.upper()),
        path=uri.path,
        query=uri.query,
        user=str(user.get("username", "")),
        groups=tuple(user.get("groups") or ()),
        extra={k: list(v) for k, v in (user.get("extra") or {}).items()},
        code=int(status.get("code", 0)),
    )
