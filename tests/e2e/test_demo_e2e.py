"""`token-broker demo` as a newcomer runs it: on ports of one's choosing, and the printed commands work as
they are — the kubeconfig `curl` fails loudly instead of saving an error as the kubeconfig."""

from __future__ import annotations

import asyncio
import signal
import socket
import subprocess
from pathlib import Path

import pytest
from support.processes import TOKEN_BROKER, clean_env, run


def free_port() -> int:
    with socket.create_server(("127.0.0.1", 0)) as sock:
        return int(sock.getsockname()[1])


def run_shell(script: str, home: Path) -> subprocess.CompletedProcess[str]:
    return run(["/bin/sh", "-c", script], home=home)


@pytest.mark.kubectl
async def test_demo_on_chosen_ports_prints_commands_that_work(tmp_path: Path) -> None:
    api, metrics, kube = free_port(), free_port(), free_port()
    proc = await asyncio.create_subprocess_exec(
        TOKEN_BROKER,
        "demo",
        "--state-dir",
        str(tmp_path / "demo"),
        "--port",
        str(api),
        "--metrics-port",
        str(metrics),
        "--kube-port",
        str(kube),
        env=clean_env(tmp_path),
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    assert proc.stdout is not None
    try:
        lines: list[str] = []
        while not lines or lines[-1] != "Press Ctrl-C to stop.":
            line = await asyncio.wait_for(proc.stdout.readline(), 60)
            assert line, "the demo exited before printing its instructions"
            lines.append(line.decode().rstrip("\n"))
        text = "\n".join(lines)
        assert f"https://127.0.0.1:{kube}" in text and f"https://127.0.0.1:{api}" in text
        assert f"http://127.0.0.1:{metrics}/metrics" in text

        start = lines.index("The same as a kubeconfig, used by kubectl:")
        fetch = "\n".join(lines[start + 1 : start + 3])
        use = lines[start + 3]
        assert "--fail" in fetch
        result = await asyncio.to_thread(run_shell, f"{fetch}\n{use}", tmp_path)
        assert result.returncode == 0, result.stderr
        assert "system:serviceaccount:demo:deployer" in result.stdout

        # the same command for a role the caller may not have: curl fails, nothing is saved as the kubeconfig
        kubeconfig = tmp_path / "demo" / "jenkins.kubeconfig"
        kubeconfig.unlink()
        refused = await asyncio.to_thread(run_shell, fetch.replace('"deployer"', '"legacy-robot"'), tmp_path)
        assert refused.returncode == 22 and "403" in refused.stderr
        assert not kubeconfig.exists() or kubeconfig.read_text() == ""
    finally:
        proc.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(proc.wait(), 30) == 0
