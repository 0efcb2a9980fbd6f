"""[server]: the API and metrics listeners and their TLS."""

from __future__ import annotations

from typing import Annotated

from pydantic import Field, StrictInt

from .fields import ConfigPath, HostPort, NonNegativeFloat, PositiveFloat, Section


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
