from audit_support import make_settings, store

__all__ = ["make_settings", "store"]
