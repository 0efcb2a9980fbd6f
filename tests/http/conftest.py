"""Fixtures of the HTTP edge tests live in http_harness (importable by the tests themselves)."""

from http_harness import broker, pki

__all__ = ["broker", "pki"]
