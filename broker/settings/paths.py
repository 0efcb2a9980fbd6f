"""The one rule for paths in config.toml, shared by every section's model: relative paths are relative to the
directory of the config file (passed as validation context `base_dir`), and `~` is expanded."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path

from pydantic import ValidationInfo


def resolve_config_path(value: Path, info: ValidationInfo) -> Path:
    value = value.expanduser()
    base = info.context.get("base_dir") if isinstance(info.context, Mapping) else None
    if base is not None and not value.is_absolute():
        # normpath, not resolve(): no file-system access, and symlinks stay as the operator wrote them
        value = Path(os.path.normpath(Path(base) / value))
    return value
