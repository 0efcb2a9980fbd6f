"""[server]: the API and metrics listeners and their TLS."""

from __future__ import annotations

import re
from typing import Annotated

from pydantic import Field, StrictInt

from .fields import ConfigPath, HostPort, NonNegativeFloat, PositiveFloat, Section


def split_host_port(value: str) -> tuple[str, int]:
    """ "127.0.0.1:8443" → ("127.0.0.1", 8443); "[::1]:8443" → ("::1", 8443). ValueError when malformed."""
    m = re.fullmatch(r"\[([0-9A-Fa-f:.]+)\]:([0-9]{1,5})|([^\s:\[\]]+):([0-9]{1,5})", value)
    if m is None:
        raise ValueError(f'{value!r} is not "host:port" (IPv6 as "[::1]:8443")')
    host = m.group(1) or m.group(3)
    port = int(m.group(2) or m.group(4))
    if port > 65535:
        raise ValueError(f"port {port} is out of range")
    return host, port


class ServerConfig(Section):
    listen: HostPort = "127.0.0.1:8443"
    tls_cert: ConfigPath
    tls_key: ConfigPath
    # mTLS: when set, clients may present certificates signed by this CA (CN = user, O = groups).
    client_ca: ConfigPath | None = None
    metrics_listen: HostPort = "127.0.0.1:9090"
    max_body_bytes: Annotated[StrictInt, Field(gt=0)] = 65536
    shutdown_grace_seconds: NonNegativeFloat = 10.0
    tls_reload_interval_seconds: PositiveFloat = 30.0
