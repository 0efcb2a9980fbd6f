"""The whole config.toml: its sections, the defaults that depend on other sections, the cross-section checks."""

from __future__ import annotations

from typing import Annotated, Any

from pydantic import BaseModel, Field, model_validator

from .audit import AuditSettings
from .auth import AuthConfig
from .checks import cross_section_problems
from .clusters import ClusterConfig
from .fields import Section, raise_problems
from .grants import GrantConfig
from .janitor import JanitorConfig
from .roles import RoleConfig
from .server import ServerConfig


def _fill_defaults(data: dict[str, Any]) -> dict[str, Any]:
    """Defaults that depend on other sections, applied to the raw data before field validation."""
    data = dict(data)
    clusters = data.get("clusters")
    if isinstance(clusters, list | tuple) and len(clusters) == 1:
        only = clusters[0]
        only_name = only.get("name") if isinstance(only, dict) else getattr(only, "name", None)
        roles = data.get("roles")
        if isinstance(only_name, str) and isinstance(roles, list | tuple):
            data["roles"] = [_with_default(r, "cluster", only_name) for r in roles]
    grants = data.get("grants")
    if isinstance(grants, list | tuple):
        data["grants"] = [_with_default(g, "name", f"grant-{i}") for i, g in enumerate(grants)]
    server = data.get("server")
    auth = data.get("auth", {})
    if isinstance(server, dict) and isinstance(auth, dict):
        mtls = auth.get("mtls", {})
        if isinstance(mtls, dict) and "enabled" not in mtls:
            data["auth"] = {**auth, "mtls": {**mtls, "enabled": server.get("client_ca") is not None}}
    # validated like a written section, so its default relative paths resolve against the config file too
    data.setdefault("audit", {})
    return data


def _with_default(item: Any, key: str, value: str) -> Any:
    if isinstance(item, dict):
        return item if item.get(key) is not None else {**item, key: value}
    if isinstance(item, BaseModel) and getattr(item, key, None) is None:
        return item.model_copy(update={key: value})
    return item


class BrokerConfig(Section):
    server: ServerConfig
    clusters: Annotated[tuple[ClusterConfig, ...], Field(min_length=1)]
    roles: tuple[RoleConfig, ...] = ()
    grants: tuple[GrantConfig, ...] = ()
    auth: AuthConfig = Field(default_factory=AuthConfig)
    audit: AuditSettings = Field(default_factory=AuditSettings)
    janitor: JanitorConfig = Field(default_factory=JanitorConfig)

    @property
    def janitor_cluster(self) -> str:
        return self.janitor.cluster or self.clusters[0].name

    def cluster(self, name: str) -> ClusterConfig | None:
        return next((c for c in self.clusters if c.name == name), None)

    @property
    def token_review_cluster(self) -> str:
        """The cluster [auth.kubernetes] sends TokenReviews to."""
        return self.auth.kubernetes.cluster or self.clusters[0].name

    @model_validator(mode="before")
    @classmethod
    def _defaults(cls, data: Any) -> Any:
        return _fill_defaults(data) if isinstance(data, dict) else data

    @model_validator(mode="after")
    def _cross_check(self) -> BrokerConfig:
        raise_problems(cross_section_problems(self))
        return self
