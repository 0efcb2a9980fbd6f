"""A Kubernetes API server simulator: real HTTPS, real wire formats and status codes, state in memory."""

from __future__ import annotations

from .context import SimContext, UserInfo
from .faults import Faults
from .options import SimOptions
from .server import KubeSim

__all__ = ["Faults", "KubeSim", "SimContext", "SimOptions", "UserInfo"]
