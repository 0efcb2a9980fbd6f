"""The one place that builds a TLS context for a connection the broker or its CLI opens as a client: the CLI to
the broker, the plugin kubectl runs, the broker to a Kubernetes API server and to an OIDC issuer's keys.

Why not `ssl.create_default_context()` as it is: from Python 3.13 it sets `VERIFY_X509_STRICT`, and OpenSSL's
strict mode refuses a CA certificate without a keyUsage extension — which is what `openssl req -x509` makes (the
seed's flow), while kubectl, curl and Python 3.11 accept it. kubectl verifies with Go's crypto/x509, which
does not require keyUsage on a trust anchor: RFC 5280 §4.2.1.3 tells CAs to include it, a rule for issuers
that Go does not enforce when verifying. So the strict flag is cleared and nothing else is relaxed:
certificates are required and verified, host names checked, TLS 1.2 is the minimum, and the 3.13 default
`VERIFY_X509_PARTIAL_CHAIN` stays (Go, too, accepts any certificate of its root pool as an anchor).

asyncpg builds its own context from the DSN's sslmode with `ssl.SSLContext()`, which never had the strict flag.
"""

from __future__ import annotations

import ssl
from pathlib import Path


class TlsFileError(ValueError):
    """A CA bundle, client certificate or key that cannot be read or used; the message names the file."""


def client_ssl_context(
    *,
    cafile: Path | str | None = None,
    cadata: str | None = None,
    certfile: Path | str | None = None,
    keyfile: Path | str | None = None,
    verify: bool = True,
) -> ssl.SSLContext:
    """Trust `cafile`/`cadata` (neither: the system trust store); present `certfile`+`keyfile` when given.

    verify=False is a kubeconfig's insecure-skip-tls-verify, nothing else.
    """
    for label, path in (("CA bundle", cafile), ("client certificate", certfile), ("client key", keyfile)):
        if path is not None:
            _readable(label, Path(path))
    try:
        context = ssl.create_default_context(cafile=str(cafile) if cafile else None, cadata=cadata)
    except (OSError, ssl.SSLError, ValueError) as exc:
        raise TlsFileError(f"CA bundle {cafile or '(inline data)'}: {tls_reason(exc)}") from None
    context.verify_flags &= ~ssl.VERIFY_X509_STRICT
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    if certfile is not None:
        try:
            context.load_cert_chain(str(certfile), str(keyfile) if keyfile else None)
        except (OSError, ssl.SSLError) as exc:
            key = f" with key {keyfile}" if keyfile else ""
            raise TlsFileError(f"client certificate {certfile}{key}: {tls_reason(exc)}") from None
    if not verify:
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
    return context


def _readable(label: str, path: Path) -> None:
    try:
        with path.open("rb") as fh:
            fh.read(1)
    except OSError as exc:
        raise TlsFileError(f"{label} {path}: {exc.strerror or exc}") from None


def tls_reason(exc: BaseException) -> str:
    """What an ssl or file error means, in a few words (no OpenSSL source locations)."""
    if isinstance(exc, ssl.SSLError):
        # "[X509: KEY_VALUES_MISMATCH] key values mismatch (_ssl.c:3926)" → "key values mismatch";
        # "[SSL] PEM lib" (no reason) is OpenSSL's word for a file that holds no usable PEM block
        return exc.reason.lower().replace("_", " ") if exc.reason else "no PEM certificate or key found"
    if isinstance(exc, OSError) and exc.strerror:
        return exc.strerror
    return str(exc)
