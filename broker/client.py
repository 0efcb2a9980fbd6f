"""A small client of the broker's own HTTP API, used by the CLI (`issue`, `credential`, `kubeconfig`, `audit`…).

Every failure leaves here as a CliError with its ExitCode and one line that names the cause: the mapping from
aiohttp's and ssl's exceptions is `transport_failure`, and nothing else in the CLI interprets them. aiohttp is
imported only when a request is made: the kubectl plugin answers from its cache without it (it is most of
the start-up time of a process that runs once per kubectl command).
"""

from __future__ import annotations

import errno
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from broker.exit_codes import CliError, ExitCode

if TYPE_CHECKING:
    import ssl

    import aiohttp

DEFAULT_TIMEOUT_SECONDS = 30.0


class BrokerClientError(CliError):
    """The broker answered with an error status (its problem+json, or whatever the status line says)."""

    def __init__(self, status: int, title: str, detail: str, retry_after: str | None = None) -> None:
        self.status = status
        self.title = title
        self.detail = detail
        self.retry_after = retry_after
        suffix = f" (retry after {retry_after}s)" if retry_after else ""
        text = f"{status} {title}: {detail}" if detail else f"{status} {title}"
        code = ExitCode.UNAVAILABLE if status == 429 or status >= 500 else ExitCode.REFUSED
        super().__init__(code, text + suffix)


@dataclass(frozen=True)
class BrokerEndpoint:
    url: str
    ca_file: Path | None = None
    cert_file: Path | None = None
    key_file: Path | None = None
    api_key: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_TIMEOUT_SECONDS
    # where api_key came from (None: TOKEN_BROKER_API_KEY): an exec kubeconfig names the file, never the key
    api_key_file: Path | None = None

    def ssl_context(self) -> ssl.SSLContext | bool:
        from broker._kits.tls import TlsFileError, client_ssl_context

        if not self.url.startswith("https://"):
            return False
        try:
            return client_ssl_context(cafile=self.ca_file, certfile=self.cert_file, keyfile=self.key_file)
        except TlsFileError as exc:
            raise CliError(ExitCode.LOCAL_FILE, str(exc)) from None

    def headers(self) -> dict[str, str]:
        return {"Authorization": f"Bearer {self.api_key}"} if self.api_key else {}

    def check_url(self) -> None:
        parts = urlsplit(self.url)
        if parts.scheme not in ("https", "http") or not parts.hostname:
            raise CliError(ExitCode.USAGE, f"--broker {self.url!r} is not an https:// URL")


async def problem_from(resp: aiohttp.ClientResponse) -> BrokerClientError:
    try:
        body: Any = json.loads(await resp.read())
    except ValueError:
        body = {}
    if not isinstance(body, dict):
        body = {}
    return BrokerClientError(
        resp.status,
        str(body.get("title", resp.reason or "")),
        str(body.get("detail", "")),
        resp.headers.get("Retry-After"),
    )


async def request(
    endpoint: BrokerEndpoint,
    method: str,
    path: str,
    *,
    json_body: dict[str, Any] | None = None,
    params: dict[str, str] | None = None,
    accept: str = "application/json",
) -> tuple[int, str, str]:
    """One call to the broker; returns (status, content type, body text) or raises CliError."""
    import aiohttp

    endpoint.check_url()
    ssl_context = endpoint.ssl_context()
    timeout = aiohttp.ClientTimeout(total=endpoint.timeout)
    headers = {"Accept": accept, **endpoint.headers()}
    try:
        # trust_env=False: the broker is usually reached directly; proxies from the environment are not applied
        async with (
            aiohttp.ClientSession(timeout=timeout, trust_env=False) as session,
            session.request(
                method,
                endpoint.url.rstrip("/") + path,
                json=json_body,
                params=params,
                headers=headers,
                ssl=ssl_context,
            ) as resp,
        ):
            if resp.status >= 400:
                raise await problem_from(resp)
            return resp.status, resp.content_type, await resp.text()
    except CliError:
        raise
    except (aiohttp.ClientError, OSError, TimeoutError) as exc:
        failure = transport_failure(exc, endpoint.url, endpoint.timeout)
        if endpoint.cert_file is not None and failure.code == ExitCode.CONNECT and _dropped(exc):
            # TLS 1.3 reports a refused client certificate after the handshake, as a dropped connection
            failure = CliError(
                failure.code,
                f"{failure.message} (did the broker refuse the client certificate {endpoint.cert_file}?)",
            )
        raise failure from None


async def request_json(endpoint: BrokerEndpoint, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    """request(), for answers that must be a JSON object."""
    _, _, text = await request(endpoint, method, path, **kwargs)
    return parse_json(text, endpoint.url)


def parse_json(text: str, url: str) -> dict[str, Any]:
    try:
        doc = json.loads(text)
    except ValueError:
        doc = None
    if not isinstance(doc, dict):
        raise CliError(ExitCode.PROTOCOL, f"{url} did not answer with a JSON object: is it a token broker?")
    return doc


def transport_failure(exc: BaseException, url: str, timeout: float) -> CliError:
    """The one mapping from a failed connection to a kind and a line: what curl would say, in words."""
    import aiohttp

    if isinstance(exc, TimeoutError):
        return CliError(ExitCode.TIMEOUT, f"timed out after {timeout:g} s waiting for {url}")
    if isinstance(exc, aiohttp.ClientConnectorCertificateError):
        cert_error = exc.certificate_error
        why = getattr(cert_error, "verify_message", "") or str(cert_error)
        return CliError(ExitCode.TLS, f"TLS: certificate verify failed: {why} ({url})")
    ssl_error = _ssl_error(exc)
    if ssl_error is not None:
        why = (ssl_error.reason or str(ssl_error)).lower().replace("_", " ")
        return CliError(ExitCode.TLS, f"TLS: handshake with {url} failed: {why}")
    if isinstance(exc, aiohttp.ClientConnectorDNSError):
        return CliError(ExitCode.CONNECT, f"cannot connect to {url}: unknown host {urlsplit(url).hostname}")
    if isinstance(exc, aiohttp.ClientConnectorError):
        return CliError(ExitCode.CONNECT, f"cannot connect to {url}: {_os_reason(exc.os_error)}")
    if isinstance(exc, aiohttp.ServerDisconnectedError):
        hint = " (a plain-HTTP URL for a TLS port?)" if url.startswith("http://") else ""
        return CliError(
            ExitCode.CONNECT, f"cannot talk to {url}: the connection closed before an answer{hint}"
        )
    if isinstance(exc, aiohttp.ClientPayloadError):
        return CliError(ExitCode.UNAVAILABLE, f"cannot talk to {url}: the answer was cut off")
    if isinstance(exc, aiohttp.ClientResponseError):
        return CliError(ExitCode.PROTOCOL, f"{url} did not answer with HTTP: is it a token broker?")
    if isinstance(exc, OSError):
        return CliError(ExitCode.CONNECT, f"cannot connect to {url}: {_os_reason(exc)}")
    return CliError(ExitCode.CONNECT, f"cannot talk to {url}: {type(exc).__name__}")


def _ssl_error(exc: BaseException) -> ssl.SSLError | None:
    """An ssl.SSLError behind an aiohttp error (a handshake alert, a protocol mismatch), if there is one."""
    import ssl

    import aiohttp

    seen: BaseException | None = exc
    for _ in range(4):
        if seen is None:
            return None
        # aiohttp's own SSL errors subclass ssl.SSLError without its attributes: look behind them
        if isinstance(seen, ssl.SSLError) and not isinstance(seen, aiohttp.ClientError):
            return seen
        seen = getattr(seen, "os_error", None) or seen.__cause__ or seen.__context__
    return None


def _dropped(exc: BaseException) -> bool:
    import aiohttp

    return isinstance(exc, aiohttp.ServerDisconnectedError | ConnectionResetError) or isinstance(
        getattr(exc, "os_error", None) or exc.__cause__, ConnectionResetError
    )


def _os_reason(exc: OSError) -> str:
    if exc.errno is not None and exc.errno in errno.errorcode:
        return os.strerror(exc.errno).lower()
    return (exc.strerror or str(exc) or type(exc).__name__).lower()
