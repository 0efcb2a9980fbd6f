"""The kubectl exec plugin's token cache: one 0600 JSON file per (broker, role, namespace, identity)."""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker.pki import write_private

# Refresh this long before expiry so kubectl never presents a token that dies mid-command.
REFRESH_MARGIN = timedelta(seconds=60)


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "token-broker" / "credentials"


def cache_key(*parts: str) -> str:
    return hashlib.sha256("\0".join(parts).encode()).hexdigest()[:32]


def _parse_time(value: str) -> datetime:
    return datetime.fromisoformat(value.replace("Z", "+00:00"))


def load(path: Path, now: datetime | None = None) -> dict[str, Any] | None:
    """The cached ExecCredential if it is still good for longer than the refresh margin, else None."""
    now = now or datetime.now(UTC)
    try:
        doc = json.loads(path.read_text())
        expires = _parse_time(doc["status"]["expirationTimestamp"])
    except (OSError, ValueError, KeyError, TypeError):
        return None
    if expires - REFRESH_MARGIN <= now:
        return None
    return doc if isinstance(doc, dict) else None


def store(path: Path, credential: dict[str, Any]) -> None:
    # write to a private temp file, then rename: a concurrent kubectl never reads half a token
    tmp = path.with_suffix(".tmp")
    write_private(tmp, json.dumps(credential).encode())
    os.replace(tmp, path)


def forget(path: Path) -> None:
    with contextlib.suppress(FileNotFoundError):
        path.unlink()
