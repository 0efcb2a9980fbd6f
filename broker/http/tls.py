"""The server side of the broker's TLS: client certificates requested, verified, but optional."""

from __future__ import annotations

import ssl
from pathlib import Path


def server_ssl_context(cert_file: Path, key_file: Path, client_ca_file: Path | None) -> ssl.SSLContext:
    """TLS 1.2+; with a client CA, a presented client certificate must chain to it (else the handshake fails).

    CERT_OPTIONAL rather than CERT_REQUIRED: callers with an API key or a bearer token connect without one,
    as kube-apiserver does with --client-ca-file.
    """
    # a bare SSLContext, not create_default_context(): Python 3.13's default sets VERIFY_X509_STRICT, which
    # refuses a client CA without keyUsage (`openssl req -x509` makes one) that kube-apiserver accepts
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.minimum_version = ssl.TLSVersion.TLSv1_2
    ctx.load_cert_chain(certfile=str(cert_file), keyfile=str(key_file))
    if client_ca_file is not None:
        ctx.load_verify_locations(cafile=str(client_ca_file))
        ctx.verify_mode = ssl.CERT_OPTIONAL
    else:
        ctx.verify_mode = ssl.CERT_NONE
    return ctx
