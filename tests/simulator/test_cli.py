"""`token-broker kube-sim` as a process: writes its files, answers kubectl, stops on SIGTERM."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from support.processes import run_kubectl

pytestmark = pytest.mark.kubectl

# the console script of this project, installed next to the interpreter running the tests
TOKEN_BROKER = str(Path(sys.executable).parent / "token-broker")


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _wait_for(path: Path, process: subprocess.Popen[str], timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while not path.exists():
        if process.poll() is not None:
            raise AssertionError(f"kube-sim exited early: {process.communicate()}")
        if time.monotonic() > deadline:
            raise AssertionError(f"{path} did not appear")
        time.sleep(0.05)


def test_kube_sim_command(tmp_path: Path) -> None:
    state = tmp_path / "state"
    port = _free_port()
    process = subprocess.Popen(
        [
            TOKEN_BROKER,
            "kube-sim",
            "--listen",
            f"127.0.0.1:{port}",
            "--state-dir",
            str(state),
            "--max-token-expiration",
            "3600",
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        _wait_for(state / "admin.kubeconfig", process)
        for name in ("ca.crt", "ca.key", "sa.key", "admin.kubeconfig"):
            assert (state / name).exists()
        assert (state / "ca.key").stat().st_mode & 0o777 == 0o600
        result = run_kubectl(state / "admin.kubeconfig", "get", "ns", "-o", "name")
        assert result.returncode == 0, result.stderr
        assert "namespace/default" in result.stdout.split()
        process.send_signal(signal.SIGTERM)
        out, _err = process.communicate(timeout=20)
    finally:
        if process.poll() is None:
            process.kill()
            process.communicate()
    assert process.returncode == 0
    assert f"https://127.0.0.1:{port}" in out
    assert f"kubectl --kubeconfig {state / 'admin.kubeconfig'} get ns" in out


def test_kube_sim_rejects_a_bad_listen_address(tmp_path: Path) -> None:
    result = subprocess.run(
        [TOKEN_BROKER, "kube-sim", "--listen", "nonsense", "--state-dir", str(tmp_path)],
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 2
    assert "--listen" in result.stderr
