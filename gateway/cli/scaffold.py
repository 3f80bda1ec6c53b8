"""`gateway adapters new NAME`: a new department adapter package, with its mock and conformance test, that passes the
conformance kit as generated and is found by entry point once installed."""

from __future__ import annotations

import keyword
import re
from importlib.resources import files
from pathlib import Path
from string import Template

from gateway.departments.registry import ENTRY_POINT_GROUP, discover

# snake_case: it becomes the entry-point name, the package names, an env prefix and a header name.
_NAME = re.compile(r"[a-z][a-z0-9]*(?:_[a-z0-9]+)*")

# template -> its place in the new project (the place may hold placeholders too)
_FILES = {
    "pyproject.toml.tmpl": "pyproject.toml",
    "README.md.tmpl": "README.md",
    "adapter_init.py.tmpl": "${package}/__init__.py",
    "adapter.py.tmpl": "${package}/adapter.py",
    "status_table.yaml.tmpl": "${package}/status_table.yaml",
    "mock_init.py.tmpl": "${mock_package}/__init__.py",
    "mock_app.py.tmpl": "${mock_package}/app.py",
    "test_conformance.py.tmpl": "tests/test_conformance.py",
}


class ScaffoldError(ValueError):
    """The name or the target cannot be used; the message says why and what to do."""


def validate_name(name: str) -> None:
    if not _NAME.fullmatch(name):
        raise ScaffoldError(f"adapter name {name!r} is not a snake_case Python identifier: use lower-case letters, "
                            "digits and single underscores, starting with a letter (e.g. water_board)")
    if keyword.iskeyword(name):
        raise ScaffoldError(f"adapter name {name!r} is a Python keyword")
    installed = discover()
    if name in installed:
        taken = installed[name]
        raise ScaffoldError(f"adapter name {name!r} is taken: the {ENTRY_POINT_GROUP} entry point {name!r} is "
                            f"installed from {taken.distribution} {taken.version}; choose another name")


def placeholders(name: str) -> dict[str, str]:
    parts = name.split("_")
    camel = "".join(part.capitalize() for part in parts)
    return {
        "name": name,
        "title": " ".join(parts),
        "class_name": f"{camel}Adapter",
        "package": f"{name}_adapter",
        "mock_package": f"{name}_mock",
        "dist": "gateway-adapter-" + "-".join(parts),
        "operation": f"{name}_application",
        "header": "-".join(part.capitalize() for part in parts),
        "header_lower": "-".join(parts),
        "env": name.upper(),
        "reference_prefix": "".join(part[0] for part in parts).upper(),
    }


def scaffold_adapter(name: str, target: Path) -> Path:
    """Write the project `target/NAME` (adapter package, status table, mock, conformance test, pyproject with the
    `gateway.adapters` entry point) and return its path. Raises ScaffoldError for a bad name or an existing path."""
    validate_name(name)
    project = target / name
    if project.exists():
        raise ScaffoldError(f"{project} already exists: remove it or choose another target directory")
    values = placeholders(name)
    templates = files("gateway.cli.templates")
    for template, place in _FILES.items():
        path = project / Template(place).substitute(values)
        path.parent.mkdir(parents=True, exist_ok=True)
        text = templates.joinpath(template).read_text(encoding="utf-8")
        path.write_text(Template(text).substitute(values), encoding="utf-8")
    return project
