"""How a CLI command reaches the broker: the shared connection options (turned into one BrokerEndpoint
argument, `endpoint`, before the command runs) and a small client of the broker's own HTTP API.

Every failure leaves here as a CliError with its ExitCode and one line that names the cause: the mapping from
aiohttp's and ssl's exceptions is `transport_failure`, and nothing else in the CLI interprets them. aiohttp is
imported only when a request is made: the kubectl plugin answers from its cache without it (it is most of
the start-up time of a process that runs once per kubectl command).
"""

from __future__ import annotations

import errno
import functools
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

import click

from .exit_codes import CliError, ExitCode

if TYPE_CHECKING:
    import ssl

    import aiohttp

DEFAULT_TIMEOUT_SECONDS = 30.0
API_KEY_ENV = "TOKEN_BROKER_API_KEY"


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


# -- the connection options --------------------------------------------------------------------------------------

_FILE = click.Path(dir_okay=False, path_type=Path)
_OPTIONS = [
    click.option(
        "--broker",
        "broker_url",
        required=True,
        envvar="TOKEN_BROKER_URL",
        show_envvar=True,
        help="Broker URL, e.g. https://token-broker.example.com:8443.",
    ),
    click.option("--cacert", type=_FILE, help="CA bundle of the broker's TLS (default: the system's)."),
    click.option("--cert", type=_FILE, help="Client certificate (PEM)."),
    click.option("--key", type=_FILE, help="Client key (PEM)."),
    click.option(
        "--api-key-file",
        type=_FILE,
        help=f"File holding an API key or bearer token (or set {API_KEY_ENV}). Never pass a key as an argument.",
    ),
    click.option(
        "--timeout",
        type=click.FloatRange(0.1, 600),
        default=DEFAULT_TIMEOUT_SECONDS,
        show_default=True,
        help="Seconds to wait for the broker's answer.",
    ),
]


def endpoint_options(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Add the connection options to a command, which receives them as `endpoint: BrokerEndpoint`."""

    @functools.wraps(fn)
    def command(
        *args: Any,
        broker_url: str,
        cacert: Path | None,
        cert: Path | None,
        key: Path | None,
        api_key_file: Path | None,
        timeout: float,
        **kwargs: Any,
    ) -> Any:
        endpoint = make_endpoint(broker_url, cacert, cert, key, api_key_file, timeout)
        return fn(*args, endpoint=endpoint, **kwargs)

    wrapped: Callable[..., Any] = command
    for option in reversed(_OPTIONS):
        wrapped = option(wrapped)
    return wrapped


def make_endpoint(
    broker_url: str,
    cacert: Path | None,
    cert: Path | None,
    key: Path | None,
    api_key_file: Path | None,
    timeout: float = DEFAULT_TIMEOUT_SECONDS,
) -> BrokerEndpoint:
    if key is not None and cert is None:
        raise click.UsageError("--key needs --cert")
    api_key = os.environ.get(API_KEY_ENV)
    if api_key_file is not None:
        api_key = read_secret_file(api_key_file, "API key file")
    return BrokerEndpoint(
        broker_url,
        ca_file=cacert,
        cert_file=cert,
        key_file=key,
        api_key=api_key.strip() if api_key and api_key.strip() else None,
        timeout=timeout,
        api_key_file=api_key_file,
    )


def read_secret_file(path: Path, what: str) -> str:
    try:
        value = path.read_text().strip()
    except OSError as exc:
        raise CliError(ExitCode.LOCAL_FILE, f"{what} {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(ExitCode.LOCAL_FILE, f"{what} {path}: not a text file") from None
    if not value:
        raise CliError(ExitCode.LOCAL_FILE, f"{what} {path} is empty")
    return value


# -- calls -------------------------------------------------------------------------------------------------------


def token_body(
    role: str, namespace: str | None, ttl: str | None, audiences: tuple[str, ...]
) -> dict[str, Any]:
    body: dict[str, Any] = {"role": role}
    if namespace:
        body["namespace"] = namespace
    if ttl:
        body["ttl"] = ttl
    if audiences:
        body["audiences"] = list(audiences)
    return body


def call(endpoint: BrokerEndpoint, method: str, path: str, **kwargs: Any) -> str:
    """One request from synchronous code: its answer's text (asyncio is loaded only here, not for the plugin's
    cached answers)."""
    import asyncio

    _, _, text = asyncio.run(request(endpoint, method, path, **kwargs))
    return text


def call_json(endpoint: BrokerEndpoint, method: str, path: str, **kwargs: Any) -> dict[str, Any]:
    return parse_json(call(endpoint, method, path, **kwargs), endpoint.url)
