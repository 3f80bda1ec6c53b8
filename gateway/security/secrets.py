"""Secrets a newcomer does not have to configure: generated once under var/secrets, reused after restarts."""

from __future__ import annotations

import base64
import os
import secrets
from pathlib import Path


def stored_secret(var_dir: Path, name: str, n_bytes: int) -> bytes:
    folder = var_dir / "secrets"
    folder.mkdir(parents=True, exist_ok=True)
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
