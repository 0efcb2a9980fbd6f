"""[[clusters]]: how the broker reaches each API server."""

from __future__ import annotations

from typing import Annotated

from pydantic import AfterValidator, StrictBool, StrictStr, model_validator

from .fields import ConfigPath, Name, PositiveFloat, Principal, Section, Url, _issuer, raise_problems


class ClusterConfig(Section):
    name: Name
    kubeconfig: ConfigPath | None = None
    context: Principal | None = None
    in_cluster: StrictBool = False
    request_timeout_seconds: PositiveFloat = 10.0
    # None: discovered from /.well-known/openid-configuration
    issuer: Annotated[StrictStr, AfterValidator(_issuer)] | None = None
    jwks_uri: Url | None = None
    # API server URL and CA written into kubeconfigs handed to callers (None: those of the broker's own config)
    server: Url | None = None
    ca_file: ConfigPath | None = None

    @model_validator(mode="after")
    def _one_source(self) -> ClusterConfig:
        problems: list[tuple[str, str]] = []
        if self.in_cluster and self.kubeconfig is not None:
            problems.append(("in_cluster", "set either kubeconfig or in_cluster = true, not both"))
        elif not self.in_cluster and self.kubeconfig is None:
            problems.append(("kubeconfig", "set kubeconfig (a path) or in_cluster = true"))
        if self.context is not None and self.kubeconfig is None:
            problems.append(("context", "context selects a context of kubeconfig; set kubeconfig too"))
        raise_problems(problems)
        return self
