"""Secrets a newcomer does not have to configure: generated once under var/secrets, reused after restarts.

Whatever under var/ holds data or secrets is readable by its owner only: folders 0700, files 0600.
"""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path


def private_folder(path: Path) -> Path:
    """Create the folder (0700), and tighten it and the files already in it (0600) when an older run left them open."""
    path.mkdir(parents=True, exist_ok=True, mode=0o700)
    path.chmod(0o700)
    for child in path.iterdir():
        if child.is_file() and not child.is_symlink():
            child.chmod(0o600)
    return path


def stored_secret(var_dir: Path, name: str, n_bytes: int) -> bytes:
    folder = private_folder(var_dir / "secrets")
    path = folder / name
    if not path.exists():
        # O_EXCL: two processes starting together agree on one value.
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:
            pass
        else:
            with os.fdopen(fd, "w") as f:
                f.write(base64.b64encode(secrets.token_bytes(n_bytes)).decode())
    return base64.b64decode(path.read_text().strip())


def configured_key(setting: str | None, var_dir: Path, name: str) -> bytes:
    """A key from its setting (base64), or else the one generated once under var_dir/secrets (`gateway up`)."""
    return base64.b64decode(setting) if setting else stored_secret(var_dir, name, 32)
