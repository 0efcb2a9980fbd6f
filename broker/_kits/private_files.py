"""Files and directories only their owner may read: keys, kubeconfigs, cached credentials. A leaf with no
third-party imports, so the kubectl plugin's fast path can use it."""

from __future__ import annotations

import os
import secrets
import stat
from pathlib import Path


def write_private(path: Path, data: bytes) -> None:
    """Write a secret file readable by its owner only, never briefly world-readable."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "wb") as fh:
        fh.write(data)
    os.chmod(path, 0o600)


def replace_private(path: Path, data: bytes) -> None:
    """write_private through a temporary file and a rename: a concurrent reader sees the old file or the new
    one, never half of either. The temporary name is unique per writer."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.{secrets.token_hex(4)}.tmp")
    try:
        write_private(tmp, data)
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise


def private_dir(path: Path) -> Path:
    """`path` as a directory (made if missing) that only its owner can enter: 0700, owned by this user.

    An existing directory with looser permissions is tightened; one owned by someone else is refused
    (PermissionError): secrets are not put where another user decides who reads them.
    """
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    info = path.stat()
    if info.st_uid != os.geteuid():
        raise PermissionError(f"{path} belongs to another user")
    if stat.S_IMODE(info.st_mode) != 0o700:
        os.chmod(path, 0o700)
    return path
