"""The running broker: settings turned into components (wiring), wired and started and stopped as one
(lifecycle)."""

from .lifecycle import Broker, Listeners, serve_until_signalled

__all__ = ["Broker", "Listeners", "serve_until_signalled"]
