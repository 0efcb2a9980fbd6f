"""Every failure of a CLI command is one line naming its cause and a documented exit status — never a
traceback: connection refused, unknown host, TLS verification, a refused client certificate, timeouts, the
broker's 4xx and 5xx, answers that are not a broker's, unreadable local files, and through kubectl."""

from __future__ import annotations

import json
import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from cli_support import Canned, Pki, canned_server, closed_port, silent_port
from support.processes import TOKEN_BROKER, kubectl, token_broker

from broker.cli.exit_codes import ExitCode


@pytest.fixture
def pki(tmp_path: Path) -> Pki:
    return Pki(tmp_path / "pki")


@pytest.fixture
async def server(pki: Pki) -> AsyncIterator[Canned]:
    async with canned_server(pki) as canned:
        yield canned


def one_line(stderr: str) -> str:
    lines = stderr.splitlines()
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    assert lines[0].startswith("token-broker: ")
    return lines[0].removeprefix("token-broker: ")


async def issue(url: str, home: Path, *extra: str, **env: str) -> tuple[int, str]:
    result = await token_broker("issue", "--broker", url, "--role", "deployer", *extra, home=home, **env)
    assert result.stdout == ""
    return result.returncode, one_line(result.stderr)


async def test_connection_refused(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    assert await issue(url, tmp_path) == (ExitCode.CONNECT, f"cannot connect to {url}: connection refused")


async def test_unknown_host(tmp_path: Path) -> None:
    url = "https://broker.invalid:8443"  # RFC 6761: never resolves
    assert await issue(url, tmp_path) == (
        ExitCode.CONNECT,
        f"cannot connect to {url}: unknown host broker.invalid",
    )


async def test_certificate_not_trusted(server: Canned, tmp_path: Path) -> None:
    code, line = await issue(server.url, tmp_path)  # no --cacert: the system store knows nothing of it
    assert code == ExitCode.TLS
    assert line.startswith("TLS: certificate verify failed: ") and line.endswith(f"({server.url})")
    assert "certificate" in line.removeprefix("TLS: certificate verify failed: ")


async def test_host_name_not_in_certificate(server: Canned, pki: Pki, tmp_path: Path) -> None:
    url = server.url.replace("127.0.0.1", "localhost")  # the certificate names 127.0.0.1 only
    code, line = await issue(url, tmp_path, "--cacert", str(pki.path("ca.crt")))
    assert code == ExitCode.TLS
    assert line.startswith("TLS: certificate verify failed: Hostname mismatch") and url in line


async def test_client_certificate_refused_in_the_handshake(server: Canned, pki: Pki, tmp_path: Path) -> None:
    # a certificate of a CA the server does not trust as a client CA
    other = Pki(tmp_path / "other")
    code, line = await issue(
        server.url,
        tmp_path,
        "--cacert",
        str(pki.path("ca.crt")),
        "--cert",
        str(other.path("jenkins.crt")),
        "--key",
        str(other.path("jenkins.key")),
    )
    # TLS 1.3 reports the refusal after the handshake (a reset); TLS 1.2 in it (an alert)
    assert code in (ExitCode.TLS, ExitCode.CONNECT), line
    assert re.search(r"TLS: handshake with .* failed: |did the broker refuse the client certificate", line), (
        line
    )


async def test_no_answer_in_time(tmp_path: Path) -> None:
    with silent_port() as port:
        url = f"https://127.0.0.1:{port}"
        assert await issue(url, tmp_path, "--timeout", "1") == (
            ExitCode.TIMEOUT,
            f"timed out after 1 s waiting for {url}",
        )


@pytest.mark.parametrize(
    ("status", "headers", "code", "line"),
    [
        (403, {}, ExitCode.REFUSED, '403 Forbidden: not allowed to use role "deployer"'),
        (422, {}, ExitCode.REFUSED, '422 Unprocessable Entity: not allowed to use role "deployer"'),
        (503, {"Retry-After": "5"}, ExitCode.UNAVAILABLE, "503 Service Unavailable: not allowed to use role"),
        (429, {"Retry-After": "7"}, ExitCode.UNAVAILABLE, "429 Too Many Requests: not allowed to use role"),
    ],
)
async def test_broker_errors(
    server: Canned, pki: Pki, tmp_path: Path, status: int, headers: dict[str, str], code: int, line: str
) -> None:
    server.status, server.headers, server.content_type = status, headers, "application/problem+json"
    title = {
        403: "Forbidden",
        422: "Unprocessable Entity",
        503: "Service Unavailable",
        429: "Too Many Requests",
    }
    server.body = json.dumps(
        {"title": title[status], "status": status, "detail": 'not allowed to use role "deployer"'}
    )
    got_code, got = await issue(server.url, tmp_path, "--cacert", str(pki.path("ca.crt")))
    assert got_code == code and got.startswith(line)
    if "Retry-After" in headers:
        assert got.endswith(f"(retry after {headers['Retry-After']}s)")


async def test_an_answer_that_is_not_a_brokers(server: Canned, pki: Pki, tmp_path: Path) -> None:
    server.body, server.content_type = "<html>hello</html>", "text/html"
    assert await issue(server.url, tmp_path, "--cacert", str(pki.path("ca.crt"))) == (
        ExitCode.PROTOCOL,
        f"{server.url} did not answer with a JSON object: is it a token broker?",
    )


async def test_plain_http_url_for_a_tls_port(server: Canned, pki: Pki, tmp_path: Path) -> None:
    url = server.url.replace("https://", "http://")
    code, line = await issue(url, tmp_path)
    assert code == ExitCode.CONNECT and "a plain-HTTP URL for a TLS port?" in line


async def test_https_url_for_a_plain_port(pki: Pki, tmp_path: Path) -> None:
    async with canned_server(pki, tls=False) as plain:
        url = plain.url.replace("http://", "https://")
        code, line = await issue(url, tmp_path)
    assert code == ExitCode.TLS and line.startswith(f"TLS: handshake with {url} failed: ")


async def test_unusable_local_files(server: Canned, pki: Pki, tmp_path: Path) -> None:
    missing = tmp_path / "missing.crt"
    assert await issue(server.url, tmp_path, "--cacert", str(missing)) == (
        ExitCode.LOCAL_FILE,
        f"CA bundle {missing}: No such file or directory",
    )
    other = Pki(tmp_path / "other")
    code, line = await issue(
        server.url,
        tmp_path,
        "--cert",
        str(pki.path("jenkins.crt")),
        "--key",
        str(other.path("jenkins.key")),
    )
    assert code == ExitCode.LOCAL_FILE and line.endswith("key values mismatch"), line
    assert await issue(server.url, tmp_path, "--api-key-file", str(missing)) == (
        ExitCode.LOCAL_FILE,
        f"API key file {missing}: No such file or directory",
    )
    empty = tmp_path / "empty.key"
    empty.write_text("\n")
    assert await issue(server.url, tmp_path, "--api-key-file", str(empty)) == (
        ExitCode.LOCAL_FILE,
        f"API key file {empty} is empty",
    )


async def test_not_a_url(tmp_path: Path) -> None:
    assert await issue("broker.example.com", tmp_path) == (
        ExitCode.USAGE,
        "--broker 'broker.example.com' is not an https:// URL",
    )


@pytest.mark.parametrize(
    "command",
    [
        ["issue", "--role", "deployer"],
        ["credential", "--role", "deployer"],
        ["kubeconfig"],
        ["audit", "list"],
        ["audit", "show", "t1"],
        ["audit", "export"],
        ["revoke", "t1"],
    ],
)
async def test_every_command_that_talks_to_the_broker_says_it_in_one_line(
    command: list[str], tmp_path: Path
) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    result = await token_broker(*command, home=tmp_path, TOKEN_BROKER_URL=url)
    assert result.returncode == ExitCode.CONNECT
    assert one_line(result.stderr) == f"cannot connect to {url}: connection refused"


@pytest.mark.kubectl
async def test_through_kubectl_the_plugin_says_it_in_one_line(tmp_path: Path) -> None:
    url = f"https://127.0.0.1:{closed_port()}"
    kubeconfig = tmp_path / "exec.kubeconfig"
    kubeconfig.write_text(
        json.dumps(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": f"https://127.0.0.1:{closed_port()}"}}],
                "users": [
                    {
                        "name": "u",
                        "user": {
                            "exec": {
                                "apiVersion": "client.authentication.k8s.io/v1",
                                "command": TOKEN_BROKER,
                                "args": ["credential", "--broker", url, "--role", "deployer"],
                                "interactiveMode": "Never",
                            }
                        },
                    }
                ],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    result = await kubectl(kubeconfig, "auth", "whoami", home=tmp_path)
    assert result.returncode != 0
    assert "Traceback" not in result.stderr
    ours = [line for line in result.stderr.splitlines() if line.startswith("token-broker: ")]
    assert ours and set(ours) == {f"token-broker: cannot connect to {url}: connection refused"}
    # kubectl adds its own line, naming the plugin's exit status
    assert f"failed with exit code {int(ExitCode.CONNECT)}" in result.stderr
    assert len(result.stderr.splitlines()) <= len(ours) + 1
