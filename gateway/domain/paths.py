"""Dotted paths into a section (``changes.*.item``: ``*`` walks every row), shared by validation and materials."""

from __future__ import annotations

import datetime
from collections.abc import Iterator
from typing import Any

from gateway.profiles.model import Condition


def join(base: str, *parts: Any) -> str:
    return ".".join([base, *(str(p) for p in parts)]) if base else ".".join(str(p) for p in parts)


def values_at(data: Any, dotted: str) -> Iterator[tuple[tuple[int, ...], str, Any]]:
    """(row indices used for ``*``, concrete relative path, value) for every value present at ``dotted``."""

    def walk(node: Any, parts: list[str], rows: tuple[int, ...], path: list[str]) -> Iterator[Any]:
        if not parts:
            yield rows, ".".join(path), node
            return
        head, rest = parts[0], parts[1:]
        if head == "*":
            if isinstance(node, list):
                for i, item in enumerate(node):
                    yield from walk(item, rest, (*rows, i), [*path, str(i)])
        elif isinstance(node, dict) and head in node:
            yield from walk(node[head], rest, rows, [*path, head])

    yield from walk(data, dotted.split("."), (), [])


def value_for_rows(data: Any, dotted: str, rows: tuple[int, ...]) -> tuple[str, Any] | None:
    """The value at ``dotted`` in the same rows (``*`` positions) as ``rows``."""
    for other_rows, path, value in values_at(data, dotted):
        if other_rows == rows[: len(other_rows)]:
            return path, value
    return None


def holds(condition: Condition, section: Any) -> bool:
    return any(value in condition.in_ for _rows, _path, value in values_at(section, condition.field))


def rows_where(condition: Condition, section: Any) -> Iterator[tuple[int, ...]]:
    """Row indices where ``condition`` holds."""
    for rows, _path, value in values_at(section, condition.field):
        if value in condition.in_:
            yield rows


def parse_date(value: Any) -> datetime.date | None:
    if not isinstance(value, str):
        return None
    try:
        return datetime.date.fromisoformat(value)
    except ValueError:
        return None
