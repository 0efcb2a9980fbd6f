"""The audit-sink lag alerts: promtool fires them on the series that should fire them, and only on those."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml
from ops_tools import run, tool
from test_ops_monitoring import RULES, _alert, _case

LAG = 'token_broker_audit_sink_lag_seconds{sink="siem",pod="%s"}'


def test_sink_lag_alerts_fire_exactly_when_they_should(tmp_path: Path) -> None:
    tests: list[dict[str, Any]] = [
        # the leader's view grows a minute per minute (the sink is down); the other replica says the same
        _case(
            {LAG % "a": "0+60x80", LAG % "b": "0+60x80"},
            [
                ("4m", "TokenBrokerAuditSinkLagging", []),
                (
                    "12m",
                    "TokenBrokerAuditSinkLagging",
                    [
                        _alert(
                            "TokenBrokerAuditSinkLagging",
                            "warning",
                            "Audit sink siem is 12m 0s behind.",
                            sink="siem",
                        )
                    ],
                ),
                ("12m", "TokenBrokerAuditSinkDown", []),
                (
                    "75m",
                    "TokenBrokerAuditSinkDown",
                    [
                        _alert(
                            "TokenBrokerAuditSinkDown",
                            "critical",
                            "Audit sink siem has received nothing for 1h 15m 0s.",
                            sink="siem",
                        )
                    ],
                ),
            ],
        ),
        # a sink that keeps up (a few seconds behind at most): quiet
        _case(
            {LAG % "a": "0 2 1 3 0 2 1 0 0 1 2 0 1 0 0 0 1 2 3 0"},
            [("15m", "TokenBrokerAuditSinkLagging", [])],
        ),
    ]
    spec = {"rule_files": [str(RULES)], "evaluation_interval": "1m", "tests": tests}
    path = tmp_path / "sink-alerts-test.yaml"
    path.write_text(yaml.safe_dump(spec, sort_keys=False))
    result = run([tool("promtool"), "test", "rules", str(path)])
    assert result.returncode == 0, result.stdout + result.stderr
