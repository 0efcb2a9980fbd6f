"""Broker processes: the configs the bench writes, and `token-broker serve` started on them."""

from __future__ import annotations

import asyncio
import socket
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import aiohttp

from .names import GROUP, NAMESPACE, SERVICE_ACCOUNT, START_TIMEOUT
from .pki import Pki
from .procs import VENV_BIN, ChildProcess, bench_env

# start_broker puts free ports in place of these lines
API_LISTEN = 'listen = "127.0.0.1:0"'
METRICS_LISTEN = 'metrics_listen = "127.0.0.1:0"'


@dataclass(frozen=True)
class RoleSpec:
    name: str
    service_account: str
    namespaces: tuple[str, ...] = (NAMESPACE,)
    revocable: bool = False


# the roles of the comparison: one whose account exists, the same revocable (a binding Secret per token)
PLAIN_ROLE = RoleSpec("bench", SERVICE_ACCOUNT)
REVOCABLE_ROLE = RoleSpec("bench-revocable", SERVICE_ACCOUNT, revocable=True)


def _toml_list(items: Sequence[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def render_config(
    *, pki: Pki, kubeconfig_path: Path, audit_path: Path, roles: Sequence[RoleSpec], grant_per_role: bool
) -> str:
    """A broker config: mTLS callers, SQLite audit, janitor on (the defaults), and the per-caller rate limit
    raised so far that it never refuses a bench request (it is still evaluated on every one).

    grant_per_role: one [[grants]] entry per role (the growth runs: N roles and N grants), else one grant
    for all of them.
    """
    lines = [
        "[server]",
        API_LISTEN,
        METRICS_LISTEN,
        f'tls_cert = "{pki.server_cert}"',
        f'tls_key = "{pki.server_key}"',
        f'client_ca = "{pki.client_ca_file}"',
        "",
        "[[clusters]]",
        'name = "bench"',
        f'kubeconfig = "{kubeconfig_path}"',
        "request_timeout_seconds = 30",
        "",
        "[audit]",
        f'sqlite_path = "{audit_path}"',
        "",
        "[auth.rate_limit]",
        "per_minute = 1e9",
        "burst = 1000000",
        "",
    ]
    for role in roles:
        lines += [
            "[[roles]]",
            f'name = "{role.name}"',
            f'service_account = "{role.service_account}"',
            f"namespaces = {_toml_list(role.namespaces)}",
            "create_service_account = false",
            'default_ttl = "15m"',
            'max_ttl = "1h"',
            f"revocable = {'true' if role.revocable else 'false'}",
            "",
        ]
    if grant_per_role:
        for i, role in enumerate(roles):
            # each grant also names a team of its own: the index has as many principals as grants
            lines += [
                "[[grants]]",
                f'name = "g-{i:05d}"',
                f'groups = ["{GROUP}", "team-{i:05d}"]',
                f'roles = ["{role.name}"]',
                "",
            ]
    else:
        lines += [
            "[[grants]]",
            'name = "bench"',
            f'groups = ["{GROUP}"]',
            f"roles = {_toml_list([r.name for r in roles])}",
            "",
        ]
    return "\n".join(lines)


@dataclass
class BrokerProcess:
    process: ChildProcess
    url: str
    metrics_url: str
    started_seconds: float

    async def stop(self) -> None:
        await self.process.stop()


@dataclass(frozen=True)
class BrokerOptions:
    """How every broker of a run is started: knobs to measure a change without editing a config by hand."""

    log_level: str = "INFO"
    # [audit] group_commit_max_delay_ms; None: the broker's default
    group_commit_delay_ms: float | None = None


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def _wait_healthy(process: ChildProcess, url: str) -> None:
    """Poll GET /healthz (the probe skips certificate checks: it only asks whether our own child listens)."""
    deadline = time.monotonic() + START_TIMEOUT
    timeout = aiohttp.ClientTimeout(total=5)
    async with aiohttp.ClientSession(timeout=timeout, trust_env=False) as session:
        while time.monotonic() < deadline:
            process.check_running()
            try:
                async with session.get(url + "/healthz", ssl=False) as resp:
                    if resp.status == 200:
                        return
            except (aiohttp.ClientError, TimeoutError):
                pass
            await asyncio.sleep(0.1)
    raise TimeoutError(f"{process.name} not healthy within {START_TIMEOUT:g}s: {process.tail()}")


async def start_broker(
    root: Path, name: str, config_text: str, options: BrokerOptions = BrokerOptions()
) -> BrokerProcess:
    """`token-broker serve` on a config written to root/name.toml; returns once it answers /healthz."""
    api, metrics = free_port(), free_port()
    # metrics_listen first: its line contains the other's text
    config_text = config_text.replace(METRICS_LISTEN, f'metrics_listen = "127.0.0.1:{metrics}"').replace(
        API_LISTEN, f'listen = "127.0.0.1:{api}"'
    )
    if options.group_commit_delay_ms is not None:
        config_text = config_text.replace(
            "[audit]\n", f"[audit]\ngroup_commit_max_delay_ms = {options.group_commit_delay_ms}\n", 1
        )
    config = root / f"{name}.toml"
    config.write_text(config_text)
    argv = [str(VENV_BIN / "token-broker"), "serve", "--config", str(config), "--log-format", "json"]
    process = ChildProcess(
        name, [*argv, "--log-level", options.log_level], root / f"{name}.log", bench_env(root)
    )
    began = time.perf_counter()
    await process.start()
    url = f"https://127.0.0.1:{api}"
    try:
        await _wait_healthy(process, url)
    except BaseException:
        await process.stop()
        raise
    return BrokerProcess(process, url, f"http://127.0.0.1:{metrics}", time.perf_counter() - began)
