"""The JSON-lines stream for a SIEM, and the open_store factory that wires it."""

from __future__ import annotations

import json
import stat
from datetime import timedelta
from pathlib import Path

import pytest
from audit_support import T0, SettingsFactory, pending, sha

from broker.app.stores import open_store
from broker.audit import AuditFilter, SqlAuditStore, TeeStore
from broker.domain.errors import BrokerError
from broker.settings import AuditSettings


def read_lines(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines()]


async def test_events_are_streamed_after_commit(make_settings: SettingsFactory, tmp_path: Path) -> None:
    out = tmp_path / "siem" / "audit.jsonl"
    out.parent.mkdir()
    store = open_store(make_settings(jsonl_path=str(out)), clock=lambda: T0)
    assert isinstance(store, TeeStore)
    async with store:
        rec = pending()
        await store.begin_issuance(rec)
        assert out.read_text() == ""  # pending is a state, not a decision
        await store.complete_issuance(
            rec.id, jti="jti-1", token_sha256=sha("t"), issued_at=T0, expires_at=T0 + timedelta(hours=1)
        )
        await store.mark_revoked(rec.id, "op", T0 + timedelta(minutes=1))
        await store.mark_revoked(rec.id, "op", T0 + timedelta(minutes=1))  # no-op: nothing streamed
        await store.record_denial(pending(event="denied", reason="no grant"))
        failed = pending()
        await store.begin_issuance(failed)
        await store.fail_issuance(failed.id, "upstream 500")
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    lines = read_lines(out)
    assert [line["event"] for line in lines] == ["issued", "revoked", "denied", "failed"]
    first = lines[0]
    assert first["id"] == rec.id and first["jti"] == "jti-1" and first["token_sha256"] == sha("t")
    assert first["caller"] == {"user": "alice", "method": "mtls", "groups": ["ci", "team-a"]}
    assert first["time"] == "2030-01-01T00:00:00.000000Z"

    # appended, never truncated, by the next run
    async with open_store(make_settings(jsonl_path=str(out)), clock=lambda: T0) as again:
        await again.record_denial(pending(event="denied"))
    assert len(read_lines(out)) == 5


async def test_stdout(make_settings: SettingsFactory, capsys: pytest.CaptureFixture[str]) -> None:
    async with open_store(make_settings(jsonl_path="-"), clock=lambda: T0) as store:
        await store.record_denial(pending(event="denied", caller="mallory"))
    line = json.loads(capsys.readouterr().out)
    assert line["event"] == "denied" and line["caller"]["user"] == "mallory"


async def test_a_failed_commit_streams_nothing(make_settings: SettingsFactory, tmp_path: Path) -> None:
    out = tmp_path / "audit.jsonl"
    async with open_store(make_settings(jsonl_path=str(out)), clock=lambda: T0) as store:
        rec = pending()
        await store.begin_issuance(rec)
        await store.fail_issuance(rec.id, "x")
        with pytest.raises(BrokerError):
            await store.complete_issuance(
                rec.id, jti="j", token_sha256=sha("t"), issued_at=T0, expires_at=None
            )
    assert [line["event"] for line in read_lines(out)] == ["failed"]


async def test_without_jsonl_the_factory_returns_the_sql_store(make_settings: SettingsFactory) -> None:
    store = open_store(make_settings())
    assert isinstance(store, SqlAuditStore)


def test_settings_defaults_and_validation(tmp_path: Path) -> None:
    s = AuditSettings()
    assert (s.backend, s.retention_days, s.group_commit_max_batch) == ("sqlite", 90, 256)
    assert s.sqlite_path == Path("token-broker-audit.sqlite3") and s.jsonl_path is None
    resolved = AuditSettings.model_validate(
        {"sqlite_path": "data/audit.db", "jsonl_path": "audit.jsonl"}, context={"base_dir": tmp_path}
    )
    assert resolved.sqlite_path == tmp_path / "data" / "audit.db"
    assert resolved.jsonl_path == str(tmp_path / "audit.jsonl")
    assert AuditSettings.model_validate({"jsonl_path": "-"}, context={"base_dir": tmp_path}).jsonl_path == "-"
    with pytest.raises(ValueError, match="postgres_dsn"):
        AuditSettings(backend="postgres")
    with pytest.raises(ValueError):
        AuditSettings(postgres_schema="Robert'); DROP TABLE")
    with pytest.raises(ValueError):
        AuditSettings(unknown_key=1)  # type: ignore[call-arg]
    assert "secret" not in repr(AuditSettings(backend="postgres", postgres_dsn="postgresql://u:secret@db/x"))


async def test_a_full_disk_under_the_stream_does_not_undo_the_commit(make_settings: SettingsFactory) -> None:
    # /dev/full: every write fails with ENOSPC, like a full disk
    async with open_store(make_settings(jsonl_path="/dev/full"), clock=lambda: T0) as store:
        assert isinstance(store, TeeStore)
        denial = await store.record_denial(pending(event="denied"))
        assert store.sink.failures == 1
        page = await store.query_events(AuditFilter())
        assert [e.event_id for e in page.items] == [denial.event_id]


async def test_an_unopenable_stream_fails_open_with_503(
    make_settings: SettingsFactory, tmp_path: Path
) -> None:
    store = open_store(make_settings(jsonl_path=str(tmp_path / "missing" / "audit.jsonl")))
    with pytest.raises(BrokerError) as err:
        await store.open()
    assert err.value.status == 503 and "JSON-lines" in err.value.reason
