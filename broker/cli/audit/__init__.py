"""`token-broker audit`: list, show, export, verify, correlate (one module each; importing this package
registers them on the group)."""

from . import correlate, listing, verify
from ._group import audit

__all__ = ["audit", "correlate", "listing", "verify"]
