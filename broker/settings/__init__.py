"""The config.toml format, and nothing else: one pydantic model per section, the cross-section checks, and the
loader with one-line `file: key.path: problem` errors. Only the app (which turns settings into the broker's
domain objects) and the CLI read it."""

from .audit import AuditSettings
from .auth import ApiKeyConfig, AuthConfig, KubernetesAuthConfig, MtlsConfig, OidcIssuerConfig
from .clusters import ClusterConfig
from .fields import split_host_port
from .grants import GrantConfig, RateLimitConfig
from .janitor import JanitorConfig
from .load import ConfigError, ConfigProblem, load_config, parse_config
from .model import BrokerConfig
from .roles import Mode, RoleConfig
from .server import ServerConfig

__all__ = [
    "ApiKeyConfig",
    "AuditSettings",
    "AuthConfig",
    "BrokerConfig",
    "ClusterConfig",
    "ConfigError",
    "ConfigProblem",
    "GrantConfig",
    "JanitorConfig",
    "KubernetesAuthConfig",
    "Mode",
    "MtlsConfig",
    "OidcIssuerConfig",
    "RateLimitConfig",
    "RoleConfig",
    "ServerConfig",
    "load_config",
    "parse_config",
    "split_host_port",
]
