"""[[roles]]: what a token is for — a service account in some namespaces, for how long, for whom."""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import AfterValidator, Field, StrictBool, StrictStr, model_validator

from broker._kits.durations import format_duration
from broker.domain.floors import TOKEN_REQUEST_MIN_SECONDS

from .fields import (
    Annotations,
    Audience,
    Duration,
    Labels,
    Name,
    NamespacePattern,
    Section,
    _selector,
    _service_account_name,
    empty_mapping,
    raise_problems,
)

Mode = Literal["token-request", "legacy-secret"]


class RoleConfig(Section):
    name: Name
    # None only before BrokerConfig fills it in (allowed when exactly one cluster is configured)
    cluster: Name | None = None
    service_account: Annotated[StrictStr, AfterValidator(_service_account_name)]
    create_service_account: StrictBool = True
    service_account_labels: Labels = Field(default_factory=empty_mapping)
    service_account_annotations: Annotations = Field(default_factory=empty_mapping)
    namespaces: Annotated[tuple[NamespacePattern, ...], Field(min_length=1)]
    namespace_selector: Annotated[StrictStr | None, AfterValidator(_selector)] = None
    # Seconds. Ignored by legacy-secret roles: a legacy Secret token does not expire.
    default_ttl: Duration = 3600
    max_ttl: Duration = 3600
    # () = the cluster's API audiences
    default_audiences: tuple[Audience, ...] = ()
    # Audiences a caller may ask for besides default_audiences
    allowed_audiences: tuple[Audience, ...] = ()
    mode: Mode = "token-request"
    # Bind each token to a Secret the broker deletes to revoke it (and to end tokens shorter than 10 minutes)
    revocable: StrictBool = False
    # A service account the broker created on demand for this role is deleted by the janitor once the last
    # token issued for it has expired (needs create_service_account).
    ephemeral_service_account: StrictBool = False
    description: StrictStr = ""

    @property
    def needs_floor(self) -> bool:
        """Its tokens live at least the TokenRequest minimum: a token-request role that cannot revoke early."""
        return self.mode == "token-request" and not self.revocable

    @property
    def cluster_name(self) -> str:
        if self.cluster is None:
            raise ValueError(f"role {self.name!r} has no cluster (load it through BrokerConfig)")
        return self.cluster

    @model_validator(mode="after")
    def _consistent(self) -> RoleConfig:
        problems: list[tuple[str, str]] = []
        if self.mode == "legacy-secret":
            if self.revocable:
                problems.append(("revocable", "revocable applies only to token-request roles"))
            if self.default_audiences or self.allowed_audiences:
                key = "default_audiences" if self.default_audiences else "allowed_audiences"
                problems.append((key, "legacy-secret tokens carry no audience"))
        else:
            if self.default_ttl > self.max_ttl:
                problems.append(
                    (
                        "default_ttl",
                        f"default_ttl ({format_duration(self.default_ttl)}) exceeds "
                        f"max_ttl ({format_duration(self.max_ttl)})",
                    )
                )
            if not self.revocable:
                for key, value in (("default_ttl", self.default_ttl), ("max_ttl", self.max_ttl)):
                    if value < TOKEN_REQUEST_MIN_SECONDS:
                        problems.append(
                            (
                                key,
                                f"{format_duration(value)} is below the 10m minimum of the TokenRequest API; "
                                "set revocable = true to issue shorter tokens",
                            )
                        )
        raise_problems(problems)
        return self
