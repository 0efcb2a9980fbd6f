"""What `--help` tells: the exit statuses (from the one ExitCode enum) and the environment variables."""

from __future__ import annotations

import pytest
from click.testing import CliRunner

from broker.cli import main
from broker.cli.exit_codes import ExitCode


@pytest.mark.parametrize("command", [[], ["issue"], ["credential"], ["audit", "list"], ["config", "check"]])
def test_help_ends_with_every_exit_status(command: list[str]) -> None:
    result = CliRunner().invoke(main, [*command, "--help"])
    assert result.exit_code == 0, result.output
    table = result.output[result.output.index("Exit status:") :]
    for code in ExitCode:
        assert f"  {code.value}  {code.meaning}\n" in table


def test_exit_statuses_are_distinct_and_described() -> None:
    assert [c.value for c in ExitCode] == list(range(len(ExitCode)))
    assert all(code.meaning for code in ExitCode)


def test_issue_help_names_the_environment_it_reads() -> None:
    result = CliRunner().invoke(main, ["issue", "--help"])
    assert "TOKEN_BROKER_URL" in result.output
    assert "TOKEN_BROKER_API_KEY" in result.output


def test_readme_lists_the_same_exit_statuses() -> None:
    from pathlib import Path

    readme = (Path(__file__).resolve().parents[2] / "README.md").read_text()
    readme = readme[readme.index("**Errors and exit status.**") : readme.index("**TLS like kubectl.**")]
    rows = [
        line for line in readme.splitlines() if line.startswith("| ") and line.split("|")[1].strip().isdigit()
    ]
    listed = {int(row.split("|")[1]): row.split("|")[2].strip() for row in rows}
    assert listed == {code.value: code.meaning for code in ExitCode}
