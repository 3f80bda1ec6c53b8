"""``gateway profiles check FILE``: the loader's problems as a list, empty when the profile is fine."""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

from gateway.profiles.loader import ProfileError, load_profile


def check_profile_file(path: Path, *, known_operations: Mapping[str, set[str]] | None = None) -> list[str]:
    try:
        load_profile(path, known_operations=known_operations)
    except ProfileError as exc:
        return list(exc.problems)
    return []
