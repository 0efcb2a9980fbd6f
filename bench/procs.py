"""Child processes of the bench (simulator, broker) and what the kernel says they cost.

CPU time comes from /proc/PID/stat (utime + stime of the whole thread group, so aiosqlite's and the
executor's threads count too), memory from /proc/PID/status. psutil is not a dependency.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import signal
import sys
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
REPO = Path(__file__).resolve().parents[1]
# the bench runs on the venv's interpreter (`make bench`); its token-broker script sits beside it
VENV_BIN = Path(sys.executable).parent


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds the process has used so far (all its threads)."""
    raw = Path(f"/proc/{pid}/stat").read_text()
    # the command name (field 2) may hold spaces and parentheses: split after its closing one
    fields = raw[raw.rindex(")") + 2 :].split()
    # fields[0] is field 3 (state); utime and stime are fields 14 and 15
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


def status_kb(pid: int, key: str) -> int:
    """A `kB` value of /proc/PID/status: VmHWM (peak RSS), VmRSS."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def self_cpu_seconds() -> float:
    """CPU of this process (the load generator), all threads."""
    return time.process_time()


def bench_env(home: Path) -> dict[str, str]:
    """The environment of every child: no proxies (all traffic is loopback), a private HOME, the venv first."""
    env = {k: v for k, v in os.environ.items() if not k.upper().endswith("_PROXY") and k != "KUBECONFIG"}
    env["HOME"] = str(home)
    env["PATH"] = f"{VENV_BIN}:{env.get('PATH', '/usr/bin:/bin')}"
    return env


class ChildProcess:
    """A long-running child whose stdout and stderr go to a log file (a pipe nobody drains would block it)."""

    def __init__(
        self,
        name: str,
        argv: Sequence[str],
        log_file: Path,
        env: Mapping[str, str],
        cwd: Path | None = None,
    ) -> None:
        self.name = name
        self.argv = list(argv)
        self.log_file = log_file
        self.env = dict(env)
        self.cwd = cwd
        self._proc: asyncio.subprocess.Process | None = None

    @property
    def pid(self) -> int:
        if self._proc is None:
            raise RuntimeError(f"{self.name} is not running")
        return self._proc.pid

    async def start(self) -> None:
        self.log_file.parent.mkdir(parents=True, exist_ok=True)
        with self.log_file.open("wb") as out:
            self._proc = await asyncio.create_subprocess_exec(
                *self.argv, stdout=out, stderr=asyncio.subprocess.STDOUT, env=self.env, cwd=self.cwd
            )

    async def wait_for(self, found: Callable[[str], Any], within: float) -> Any:
        """Poll the log until `found(line)` returns something truthy; that value is returned."""
        deadline = time.monotonic() + within
        offset = 0
        pending = ""
        while time.monotonic() < deadline:
            self.check_running()
            with self.log_file.open("rb") as fh:
                fh.seek(offset)
                chunk = fh.read()
            offset += len(chunk)
            pending += chunk.decode(errors="replace")
            *lines, pending = pending.split("\n")
            for line in lines:
                value = found(line)
                if value:
                    return value
            await asyncio.sleep(0.05)
        raise TimeoutError(f"{self.name} not ready within {within:g}s: {self.tail()}")

    def check_running(self) -> None:
        if self._proc is not None and self._proc.returncode is not None:
            raise RuntimeError(f"{self.name} exited with {self._proc.returncode}: {self.tail()}")

    def tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self.log_file.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return ""

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def peak_rss_mb(self) -> float:
        return status_kb(self.pid, "VmHWM") / 1024

    def rss_mb(self) -> float:
        return status_kb(self.pid, "VmRSS") / 1024

    async def stop(self, grace: float = 20.0) -> None:
        proc, self._proc = self._proc, None
        if proc is None or proc.returncode is not None:
            return
        proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), grace)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


def banner_url(line: str) -> str | None:
    """The simulator's first banner line: `kube-sim: serving the Kubernetes API at https://H:P (...)`."""
    marker = "serving the Kubernetes API at "
    if marker not in line:
        return None
    return line.split(marker, 1)[1].split()[0]


def log(message: str) -> None:
    """Progress on stderr; the table goes to stdout."""
    print(message, file=sys.stderr, flush=True)
