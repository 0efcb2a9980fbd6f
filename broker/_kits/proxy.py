"""Which proxy a connection goes through, from the environment (HTTPS_PROXY, HTTP_PROXY, NO_PROXY, either case),
resolved once: aiohttp's trust_env would redo it in a worker thread on every request."""

from __future__ import annotations

import base64
import urllib.request
from collections.abc import Callable, Mapping
from urllib.parse import unquote, urlsplit, urlunsplit


def resolve_proxy(url: str, environ: Mapping[str, str] | None = None) -> str | None:
    """The proxy for `url` from HTTPS_PROXY/HTTP_PROXY/NO_PROXY (either case), or None.

    Resolved once per cluster at start-up; aiohttp's trust_env would redo this in a thread per request.
    """
    if environ is None:
        proxies = urllib.request.getproxies_environment()
    else:
        # the same rules as getproxies_environment, over a given mapping: lowercase wins over uppercase
        proxies = {}
        for name, value in environ.items():
            if value and name.lower().endswith("_proxy"):
                proxies.setdefault(name[:-6].lower(), value)
        for name, value in environ.items():
            if value and name.endswith("_proxy"):
                proxies[name[:-6]] = value
    parts = urlsplit(url)
    proxy = proxies.get(parts.scheme) or proxies.get("all")
    if not proxy or not parts.hostname:
        return None
    # proxy_bypass_environment understands NO_PROXY entries with ports, leading dots, "*" and CIDR-less IPs
    host = parts.netloc.rsplit("@", 1)[-1]
    if _proxy_bypass_environment(host, proxies):
        return None
    return proxy


# urllib's NO_PROXY matcher (ports, leading dots, "*"); typeshed does not declare it
_proxy_bypass_environment: Callable[[str, Mapping[str, str]], bool] = urllib.request.proxy_bypass_environment  # type: ignore[attr-defined]


def split_proxy(proxy: str) -> tuple[str, dict[str, str] | None]:
    """Move user:password out of a proxy URL into a Proxy-Authorization header."""
    parts = urlsplit(proxy if "://" in proxy else "http://" + proxy)
    if parts.username is None:
        return urlunsplit(parts), None
    netloc = parts.hostname or ""
    if parts.port:
        netloc += f":{parts.port}"
    creds = f"{unquote(parts.username)}:{unquote(parts.password or '')}".encode()
    header = "Basic " + base64.b64encode(creds).decode("ascii")
    return urlunsplit(parts._replace(netloc=netloc)), {"Proxy-Authorization": header}
