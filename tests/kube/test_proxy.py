"""HTTPS_PROXY / NO_PROXY, resolved once per cluster."""

from __future__ import annotations

import pytest

from broker._kits.proxy import resolve_proxy, split_proxy

URL = "https://api.example.com:6443"


def test_no_proxy_configured() -> None:
    assert resolve_proxy(URL, {}) is None


def test_https_proxy_applies_to_https_servers() -> None:
    assert resolve_proxy(URL, {"HTTPS_PROXY": "http://proxy:3128"}) == "http://proxy:3128"
    assert resolve_proxy(URL, {"HTTP_PROXY": "http://proxy:3128"}) is None
    assert resolve_proxy("http://api.example.com", {"HTTP_PROXY": "http://p:1"}) == "http://p:1"


def test_lowercase_wins() -> None:
    env = {"HTTPS_PROXY": "http://upper:1", "https_proxy": "http://lower:2"}
    assert resolve_proxy(URL, env) == "http://lower:2"


@pytest.mark.parametrize(
    "no_proxy",
    ["api.example.com", ".example.com", "example.com", "*", "other,api.example.com", "api.example.com:6443"],
)
def test_no_proxy_bypasses(no_proxy: str) -> None:
    assert resolve_proxy(URL, {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy}) is None


@pytest.mark.parametrize("no_proxy", ["other.com", "api.example.com:443", "xample.com.evil"])
def test_no_proxy_not_matching(no_proxy: str) -> None:
    assert (
        resolve_proxy(URL, {"HTTPS_PROXY": "http://proxy:3128", "NO_PROXY": no_proxy}) == "http://proxy:3128"
    )


def test_process_environment_is_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("https_proxy", "HTTPS_PROXY", "no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy:3128")
    assert resolve_proxy(URL) == "http://proxy:3128"
    monkeypatch.setenv("NO_PROXY", "127.0.0.1,.example.com")
    assert resolve_proxy(URL) is None
    assert resolve_proxy("https://127.0.0.1:6443") is None


def test_proxy_credentials_move_into_a_header() -> None:
    url, headers = split_proxy("http://user:p%40ss@proxy:3128")
    assert url == "http://proxy:3128"
    assert headers == {"Proxy-Authorization": "Basic dXNlcjpwQHNz"}
    assert split_proxy("proxy:3128") == ("http://proxy:3128", None)
