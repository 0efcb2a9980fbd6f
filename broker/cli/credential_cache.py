"""The kubectl exec plugin's credential cache: one file per answer the broker would give, sealed with the
caller's own credential.

On a CI agent many jobs share one OS user and one HOME. So an entry is found by everything that decides the
broker's answer — broker URL, the caller's credential (a SHA-256 of the API key / bearer token, or of the
client certificate and key), role, namespace, cluster, audiences, TTL — and a job with another credential never
finds, let alone reads, another job's token: the file name and the AES-256-GCM key are derived from that
credential, so a cached token is useless without the secret that obtained it. Directories are 0700, files 0600.

The cache is bounded (MAX_ENTRIES; expired and foreign files are removed whenever a new entry is written),
and every failure to read or write it degrades to asking the broker.
"""

from __future__ import annotations

import base64
import contextlib
import hashlib
import hmac
import json
import os
import secrets
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from broker._kits.private_files import private_dir, replace_private
from broker._kits.rfc3339 import format_time, parse_time

FORMAT = 1
# Refresh this long before expiry so kubectl never presents a token that dies mid-command.
REFRESH_MARGIN = timedelta(seconds=60)
MAX_ENTRIES = 64
# the kubectl processes an entry remembers handing its credential to (see credential_refetch.py)
MAX_RECIPIENTS = 16
_STALE_TMP_SECONDS = 60.0


def default_cache_dir() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "token-broker" / "credentials"


def credential_digest(*, api_key: str | None, cert_pem: bytes | None, key_pem: bytes | None) -> bytes | None:
    """SHA-256 over what authenticates the caller; None when nothing does (such answers are not cached)."""
    if api_key is None and cert_pem is None:
        return None
    digest = hashlib.sha256(b"token-broker credential cache\0")
    for label, part in (
        (b"api-key", api_key.encode() if api_key else None),
        (b"cert", cert_pem),
        (b"key", key_pem),
    ):
        if part is not None:
            digest.update(label + b"\0" + hashlib.sha256(part).digest())
    return digest.digest()


@dataclass(frozen=True)
class CacheKey:
    broker_url: str
    role: str
    namespace: str
    cluster: str
    audiences: tuple[str, ...]
    ttl: str
    credential: bytes = field(repr=False)

    def _derive(self, purpose: bytes) -> bytes:
        parts = [self.broker_url.rstrip("/"), self.role, self.namespace, self.cluster, sorted(self.audiences)]
        material = json.dumps([*parts, self.ttl]).encode()
        return hmac.new(self.credential, purpose + b"\0" + material, hashlib.sha256).digest()

    @property
    def file_name(self) -> str:
        return self._derive(b"name").hex()[:40] + ".json"

    @property
    def sealing_key(self) -> bytes:
        return self._derive(b"seal")

    @property
    def owner(self) -> str:
        return owner_tag(self.credential)


def owner_tag(credential: bytes) -> str:
    """Marks the entries of one credential (`logout --api-key-file`), and tells nothing without it."""
    return hmac.new(credential, b"owner", hashlib.sha256).hexdigest()[:32]


@dataclass
class Entry:
    """A cached ExecCredential and what the plugin remembers about handing it out."""

    credential: dict[str, Any]
    expires_at: datetime
    fetched_at: float  # epoch seconds
    fetched_for: str | None = None  # the kubectl process it was fetched for, if any
    handed_to: list[str] = field(default_factory=list)
    # the stored file as read, so recording a recipient rewrites the metadata and not the sealed token
    stored: dict[str, Any] | None = field(default=None, repr=False)

    def usable(self, now: datetime) -> bool:
        return self.expires_at - REFRESH_MARGIN > now

    def hand_to(self, process: str) -> None:
        if process not in self.handed_to:
            self.handed_to = [*self.handed_to, process][-MAX_RECIPIENTS:]


def expiry_of(credential: dict[str, Any]) -> datetime | None:
    try:
        value = credential["status"]["expirationTimestamp"]
        return parse_time(str(value))
    except (KeyError, TypeError, ValueError):
        return None


class CredentialCache:
    def __init__(self, directory: Path) -> None:
        self.directory = directory

    def load(self, key: CacheKey) -> Entry | None:
        """The entry for `key`, or None: missing, unreadable, tampered with, or sealed with another key."""
        from cryptography.exceptions import InvalidTag
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        path = self.directory / key.file_name
        try:
            doc = json.loads(path.read_bytes())
            sealed = base64.b64decode(doc["sealed"])
            nonce = base64.b64decode(doc["nonce"])
            plain = AESGCM(key.sealing_key).decrypt(nonce, sealed, key.file_name.encode())
            credential = json.loads(plain)
            expires_at = expiry_of(credential)
            if doc.get("format") != FORMAT or expires_at is None:
                return None
            return Entry(
                credential,
                expires_at,
                float(doc["fetched_at"]),
                doc.get("fetched_for"),
                [str(p) for p in doc.get("handed_to", [])][-MAX_RECIPIENTS:],
                stored=doc,
            )
        except (OSError, ValueError, KeyError, TypeError, InvalidTag):
            return None

    def store(self, key: CacheKey, entry: Entry) -> None:
        if entry.stored is not None:
            # the same credential, handed to one more process: only the clear metadata changes
            doc = {**entry.stored, "handed_to": entry.handed_to}
        else:
            doc = self._sealed(key, entry)
        private_dir(self.directory)
        self._tighten_parent()
        replace_private(self.directory / key.file_name, json.dumps(doc).encode())

    def _sealed(self, key: CacheKey, entry: Entry) -> dict[str, Any]:
        from cryptography.hazmat.primitives.ciphers.aead import AESGCM

        nonce = secrets.token_bytes(12)
        sealed = AESGCM(key.sealing_key).encrypt(
            nonce, json.dumps(entry.credential).encode(), key.file_name.encode()
        )
        return {
            "format": FORMAT,
            # in the clear, for `token-broker logout --broker/--role`, `revoke` and pruning; never the token
            "broker": key.broker_url,
            "role": key.role,
            "namespace": key.namespace,
            "cluster": key.cluster,
            "owner": key.owner,
            # what the audit trail records of the token: lets `token-broker revoke` forget it here
            "token_sha256": hashlib.sha256(str(entry.credential["status"]["token"]).encode()).hexdigest(),
            "expires_at": format_time(entry.expires_at, "microseconds"),
            "fetched_at": entry.fetched_at,
            "fetched_for": entry.fetched_for,
            "handed_to": entry.handed_to,
            "nonce": base64.b64encode(nonce).decode(),
            "sealed": base64.b64encode(sealed).decode(),
        }

    def forget(self, key: CacheKey) -> None:
        with contextlib.suppress(OSError):
            (self.directory / key.file_name).unlink()

    def forget_matching(
        self,
        broker_url: str | None = None,
        role: str | None = None,
        token_sha256: str | None = None,
        owner: str | None = None,
    ) -> int:
        """Remove the entries of one broker, role, token and/or credential (all when all are None); how many."""
        removed = 0
        for path, doc in self._entries():
            if owner is not None and doc.get("owner") != owner:
                continue
            if broker_url is not None and str(doc.get("broker", "")).rstrip("/") != broker_url.rstrip("/"):
                continue
            if role is not None and doc.get("role") != role:
                continue
            if token_sha256 is not None and doc.get("token_sha256") != token_sha256:
                continue
            with contextlib.suppress(FileNotFoundError):
                path.unlink()
                removed += 1
        return removed

    def prune(self, now: datetime | None = None) -> None:
        """Drop expired entries, files of other formats, abandoned temporary files; keep at most MAX_ENTRIES."""
        now = now or datetime.now(UTC)
        kept: list[tuple[float, Path]] = []
        for path, doc in self._entries():
            try:
                expired = parse_time(str(doc["expires_at"])) <= now

                fetched = float(doc["fetched_at"])
            except (KeyError, TypeError, ValueError):
                expired, fetched = True, 0.0
            if doc.get("format") != FORMAT or expired:
                path.unlink(missing_ok=True)
            else:
                kept.append((fetched, path))
        for _, path in sorted(kept)[: max(0, len(kept) - MAX_ENTRIES)]:
            path.unlink(missing_ok=True)
        for tmp in self.directory.glob(".*.tmp"):
            with contextlib.suppress(OSError):
                if time.time() - tmp.stat().st_mtime > _STALE_TMP_SECONDS:
                    tmp.unlink()

    def _entries(self) -> Iterator[tuple[Path, dict[str, Any]]]:
        try:
            paths = sorted(self.directory.glob("*.json"))
        except OSError:
            return
        for path in paths:
            try:
                doc = json.loads(path.read_bytes())
            except (OSError, ValueError):
                doc = {}
            yield path, doc if isinstance(doc, dict) else {}

    def _tighten_parent(self) -> None:
        # the default layout is ~/.cache/token-broker/credentials: token-broker/ is ours too (0755 before)
        parent = self.directory.parent
        if parent.name == "token-broker" and self.directory.name == "credentials":
            private_dir(parent)
