"""Signed checkpoints: an ed25519 signature over (seq, hash) of the chain head, taken every so often.

The hash chain shows that no event was edited, removed or reordered *unless the whole chain after it was
rewritten*: somebody with write access to the database can recompute every hash. A checkpoint signed with a
key the database never sees (it lives in the broker's config, e.g. a mounted Secret) pins the chain at that
seq: a rewrite that reaches back past a checkpoint no longer matches its signed hash, and a forged
checkpoint needs the key. Each checkpoint is also logged (seq, hash, signature), so a copy lives outside the
database for whoever ships the broker's logs.
"""

from __future__ import annotations

import base64
import hashlib
import logging
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from broker._kits.rfc3339 import format_time

from .backend import Backend, Tx
from .chain import Link, read_link
from .records import utc_now
from .sqlstore import SqlAuditStore

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Checkpoint:
    seq: int
    hash: str
    signed_at: datetime
    key_id: str
    signature: str

    def message(self) -> bytes:
        """What is signed: the chain point and when, in a fixed text form."""
        return f"kube-token-broker audit checkpoint v1\n{self.seq}\n{self.hash}\n{format_time(self.signed_at, 'microseconds')}\n".encode()


class CheckpointKeyError(ValueError):
    """The configured file is not an ed25519 private key (or a public key where one is expected)."""


def key_id(public: Ed25519PublicKey) -> str:
    raw = public.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    return hashlib.sha256(raw).hexdigest()[:16]


def load_private_key(path: Path) -> Ed25519PrivateKey:
    """A PEM PKCS#8 ed25519 key (`openssl genpkey -algorithm ed25519`)."""
    try:
        key = serialization.load_pem_private_key(path.read_bytes(), password=None)
    except ValueError as err:
        raise CheckpointKeyError(f"{path}: not a PEM private key: {err}") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise CheckpointKeyError(f"{path}: not an ed25519 key")
    return key


def load_public_key(path: Path) -> Ed25519PublicKey:
    """A PEM public key, or the private key (its public half is taken)."""
    data = path.read_bytes()
    if b"PRIVATE KEY" in data:
        return load_private_key(path).public_key()
    try:
        key = serialization.load_pem_public_key(data)
    except ValueError as err:
        raise CheckpointKeyError(f"{path}: not a PEM public key: {err}") from None
    if not isinstance(key, Ed25519PublicKey):
        raise CheckpointKeyError(f"{path}: not an ed25519 key")
    return key


def sign(key: Ed25519PrivateKey, head: Link, at: datetime) -> Checkpoint:
    unsigned = Checkpoint(head.seq, head.hash, at, key_id(key.public_key()), "")
    signature = base64.b64encode(key.sign(unsigned.message())).decode()
    return Checkpoint(head.seq, head.hash, at, unsigned.key_id, signature)


def signature_valid(checkpoint: Checkpoint, keys: Sequence[Ed25519PublicKey]) -> bool:
    for public in keys:
        if key_id(public) != checkpoint.key_id:
            continue
        try:
            public.verify(base64.b64decode(checkpoint.signature), checkpoint.message())
        except (InvalidSignature, ValueError):
            return False
        return True
    return False


async def read_checkpoints(backend: Backend, *, after: int = -1) -> list[Checkpoint]:
    rows = await backend.fetch(
        "SELECT seq, hash, signed_at, key_id, signature FROM audit_checkpoints WHERE seq > ? ORDER BY seq",
        [after],
    )
    return [
        Checkpoint(int(r["seq"]), r["hash"], backend.decode_time(r["signed_at"]), r["key_id"], r["signature"])
        for r in rows
    ]


class Checkpointer:
    """Signs the chain head when it moved since the newest checkpoint (broker/background/streaming.py runs it every
    `checkpoint_interval_seconds` on the janitor leader)."""

    def __init__(
        self, store: SqlAuditStore, key: Ed25519PrivateKey, *, clock: Callable[[], datetime] = utc_now
    ) -> None:
        self._store = store
        self._key = key
        self._clock = clock

    async def checkpoint_once(self) -> Checkpoint | None:
        """Sign and store the head when it is past the newest checkpoint; the checkpoint written, or None."""
        backend = self._store.backend
        head = await read_link(backend, "head")
        newest = await backend.fetch("SELECT max(seq) AS seq FROM audit_checkpoints")
        if head.seq == 0 or (newest[0]["seq"] is not None and int(newest[0]["seq"]) >= head.seq):
            return None
        checkpoint = sign(self._key, head, self._clock())

        async def write(tx: Tx) -> None:
            await tx.execute(
                "INSERT INTO audit_checkpoints (seq, hash, signed_at, key_id, signature) VALUES (?, ?, ?, ?, ?) "
                "ON CONFLICT (seq) DO NOTHING",
                [
                    checkpoint.seq,
                    checkpoint.hash,
                    backend.encode_time(checkpoint.signed_at),
                    checkpoint.key_id,
                    checkpoint.signature,
                ],
            )

        await self._store.in_writer(write)
        log.info(
            "audit checkpoint",
            extra={
                "seq": checkpoint.seq,
                "hash": checkpoint.hash,
                "key_id": checkpoint.key_id,
                "signature": checkpoint.signature,
            },
        )
        return checkpoint
