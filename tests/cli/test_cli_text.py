"""`audit show` and `decode` print label: value blocks whose values share one column, whatever the labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from broker.cli._text import aligned
from broker.cli.audit.listing import describe_token

NOW = datetime(2026, 1, 1, 12, 0, tzinfo=UTC)


def value_columns(block: list[str]) -> set[int]:
    columns = set()
    for line in block:
        label_end = line.index(":") + 1
        rest = line[label_end:]
        columns.add(label_end + len(rest) - len(rest.lstrip(" ")))
    return columns


def test_values_share_one_column_however_long_the_label() -> None:
    item = {
        "token_id": "t1",
        "state": "issued",
        "active": True,
        "caller": {"user": "jenkins", "method": "mtls", "groups": ["ci"]},
        "role": "deployer",
        "namespace": "demo",
        "service_account": "deployer",
        "requested_at": NOW.isoformat(),
        "expires_at": (NOW + timedelta(minutes=15)).isoformat(),
        "bound_secret": {"namespace": "demo", "name": "token-broker-abc"},
        "jti": "j1",
        "token_sha256": "0" * 64,
        "context": {"build_url": "https://jenkins.example.com/job/42/", "x": "multi\nline   value"},
    }
    lines = describe_token(item, NOW).splitlines()
    assert lines[0] == "token t1"
    assert len(value_columns(lines[1:])) == 1
    assert "  context build_url: https://jenkins.example.com/job/42/" in lines  # the longest, then a space
    assert "  service account:   demo/deployer" in lines
    assert any(line.endswith("multi line value") for line in lines)  # a value never breaks the block


def test_aligned_pads_to_the_longest_label() -> None:
    assert aligned([("a", "1"), ("longer label", "2")]) == ["  a:            1", "  longer label: 2"]
    assert aligned([]) == []
