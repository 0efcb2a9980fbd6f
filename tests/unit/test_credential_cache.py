"""The exec plugin's cache: keyed and sealed by the caller's credential, private, bounded; and the rule that
tells a kubectl re-run after a 401 from a new kubectl command."""

from __future__ import annotations

import json
import os
import stat
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from broker.cli import credential_cache
from broker.cli.credential_cache import CacheKey, CredentialCache, Entry, credential_digest
from broker.cli.credential_refetch import REFETCH_PAUSE_SECONDS, kubectl_process, refused_before

NOW = datetime.now(UTC).replace(microsecond=0)


def exec_credential(token: str, expires: datetime) -> dict[str, object]:
    return {
        "apiVersion": "client.authentication.k8s.io/v1",
        "kind": "ExecCredential",
        "status": {"token": token, "expirationTimestamp": expires.strftime("%Y-%m-%dT%H:%M:%SZ")},
    }


def key(api_key: str = "key-a", **overrides: object) -> CacheKey:
    fields: dict[str, object] = {
        "broker_url": "https://broker.example:8443",
        "role": "deployer",
        "namespace": "ci",
        "cluster": "staging",
        "audiences": (),
        "ttl": "",
        "credential": credential_digest(api_key=api_key, cert_pem=None, key_pem=None),
    }
    fields.update(overrides)
    return CacheKey(**fields)  # type: ignore[arg-type]


def entry(token: str = "header.payload.sig", minutes: int = 15) -> Entry:
    expires = NOW + timedelta(minutes=minutes)
    return Entry(exec_credential(token, expires), expires, time.time())


def test_everything_that_decides_the_answer_keys_the_entry() -> None:
    base = key()
    variants = [
        key("key-b"),
        key(broker_url="https://other:8443"),
        key(role="reader"),
        key(namespace="prod"),
        key(cluster="prod"),
        key(audiences=("vault",)),
        key(ttl="15m"),
        key(credential=credential_digest(api_key=None, cert_pem=b"cert", key_pem=b"key")),
    ]
    names = {base.file_name, *(v.file_name for v in variants)}
    assert len(names) == len(variants) + 1
    assert key(broker_url="https://broker.example:8443/").file_name == base.file_name
    assert key(audiences=("b", "a")).file_name == key(audiences=("a", "b")).file_name
    assert credential_digest(api_key=None, cert_pem=None, key_pem=None) is None


def test_another_credential_neither_finds_nor_opens_an_entry(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path / "credentials")
    cache.store(key("key-a"), entry("token-of-a"))
    assert cache.load(key("key-b")) is None
    (stored,) = (tmp_path / "credentials").glob("*.json")
    assert "token-of-a" not in stored.read_text()  # sealed: useless without key-a
    # B's key under A's file name: the seal does not open
    forged = tmp_path / "forged"
    forged.mkdir()
    (forged / key("key-b").file_name).write_bytes(stored.read_bytes())
    assert CredentialCache(forged).load(key("key-b")) is None
    loaded = cache.load(key("key-a"))
    assert loaded is not None and loaded.credential["status"]["token"] == "token-of-a"  # type: ignore[index]


def test_directories_0700_files_0600_even_where_an_older_version_left_0755(tmp_path: Path) -> None:
    root = tmp_path / "token-broker"
    (root / "credentials").mkdir(parents=True, mode=0o755)
    os.chmod(root, 0o755)
    os.chmod(root / "credentials", 0o755)
    # an older version's plain-text entry
    (root / "credentials" / "0123.json").write_text(json.dumps(exec_credential("old-plain", NOW)))
    cache = CredentialCache(root / "credentials")
    cache.store(key(), entry())
    cache.prune()
    assert stat.S_IMODE(root.stat().st_mode) == 0o700
    assert stat.S_IMODE((root / "credentials").stat().st_mode) == 0o700
    files = list((root / "credentials").iterdir())
    assert [f.name for f in files] == [key().file_name]
    assert stat.S_IMODE(files[0].stat().st_mode) == 0o600


def test_expiry_margin_tampering_and_corruption(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path)
    cache.store(key(), entry(minutes=15))
    loaded = cache.load(key())
    assert (
        loaded is not None
        and loaded.usable(NOW)
        and not loaded.usable(NOW + timedelta(minutes=14, seconds=1))
    )
    path = tmp_path / key().file_name
    doc = json.loads(path.read_text())
    doc["sealed"] = doc["sealed"][:-4] + ("AAAA" if not doc["sealed"].endswith("AAAA") else "BBBB")
    path.write_text(json.dumps(doc))
    assert cache.load(key()) is None
    path.write_text("{not json")
    assert cache.load(key()) is None


def test_prune_keeps_the_cache_bounded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(credential_cache, "MAX_ENTRIES", 3)
    cache = CredentialCache(tmp_path)
    for i in range(5):
        e = entry(f"t{i}")
        e.fetched_at = 1000.0 + i
        cache.store(key(f"k{i}"), e)
    cache.store(key("gone"), entry("expired", minutes=-1))
    cache.prune()
    left = {p.name for p in tmp_path.glob("*.json")}
    assert left == {key(f"k{i}").file_name for i in (2, 3, 4)}


def test_logout_filters_and_revoke_by_token_digest(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path)
    cache.store(key(role="deployer"), entry("d"))
    cache.store(key(role="reader"), entry("r"))
    cache.store(key(broker_url="https://other:8443"), entry("o"))
    assert cache.forget_matching(role="reader") == 1
    assert cache.forget_matching(broker_url="https://other:8443/") == 1
    import hashlib

    assert cache.forget_matching(token_sha256=hashlib.sha256(b"x").hexdigest()) == 0
    assert cache.forget_matching(token_sha256=hashlib.sha256(b"d").hexdigest()) == 1
    assert cache.forget_matching() == 0
    # one caller's entries only: a CI job cleaning up after itself in a shared HOME
    cache.store(key("key-a"), entry("a"))
    cache.store(key("key-b"), entry("b"))
    assert cache.forget_matching(owner=key("key-a").owner) == 1
    assert cache.load(key("key-b")) is not None


def test_recording_a_recipient_keeps_the_sealed_token(tmp_path: Path) -> None:
    cache = CredentialCache(tmp_path)
    cache.store(key(), entry())
    sealed = json.loads((tmp_path / key().file_name).read_text())["sealed"]
    loaded = cache.load(key())
    assert loaded is not None
    loaded.hand_to("42:1000")
    cache.store(key(), loaded)
    doc = json.loads((tmp_path / key().file_name).read_text())
    assert doc["sealed"] == sealed and doc["handed_to"] == ["42:1000"]


def test_a_kubectl_process_asking_again_was_refused() -> None:
    now = time.time()
    e = entry()
    e.fetched_at = now - 600
    assert not refused_before(e, "7:1", now)  # a new kubectl command
    e.hand_to("7:1")
    assert refused_before(e, "7:1", now)  # the same kubectl again: after a 401
    assert not refused_before(e, "8:1", now)  # another command in parallel
    assert not refused_before(e, "7:2", now)  # a reused PID is another process
    assert not refused_before(e, None, now)  # not run by kubectl: a person, a script
    # fetched for this very process moments ago: no second fetch while its retries go on
    e.fetched_for, e.fetched_at = "7:1", now - 1
    assert not refused_before(e, "7:1", now)
    assert refused_before(e, "7:1", now + REFETCH_PAUSE_SECONDS)


def test_kubectl_process_is_the_parent_with_its_start_time(tmp_path: Path) -> None:
    assert kubectl_process({}) is None
    info = {"KUBERNETES_EXEC_INFO": "{}"}
    pid = os.getppid()
    (tmp_path / str(pid)).mkdir()
    # the command name may hold spaces and parentheses
    fields = ["S", *[str(n) for n in range(4, 22)], "987654", "0"]
    (tmp_path / str(pid) / "stat").write_text(f"{pid} (kube ctl) x) " + " ".join(fields))
    assert kubectl_process(info, proc=tmp_path) == f"{pid}:987654"
    assert kubectl_process(info, proc=tmp_path / "missing") == f"{pid}:"
    # the real /proc: this process's parent, stable across calls
    assert kubectl_process(info) == kubectl_process(info)
