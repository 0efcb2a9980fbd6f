"""Who may have which role, in which namespace, for how long, at what rate. Pure: domain and _kits only — no
I/O, no HTTP, no Kubernetes client, no config format."""

from .decisions import Grant, Match, RateLimitChoice, RoleView
from .rules import Policy

__all__ = ["Grant", "Match", "Policy", "RateLimitChoice", "RoleView"]
