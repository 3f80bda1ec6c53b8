"""`gateway adapters new`: the generated package passes its own conformance test, ruff and mypy, installs with pip and
is discovered by entry point.

The install goes into a private `--target` directory put on PYTHONPATH of subprocesses, not into the shared venv:
other test runs in the same venv never see a half-installed `water_board`, and nothing is left to uninstall.
"""

from __future__ import annotations

import importlib
import os
import subprocess
import sys
import tomllib
from collections.abc import Iterator
from pathlib import Path

import pytest

from gateway.cli.scaffold import ScaffoldError, scaffold_adapter
from gateway.sdk import StatusTable
from gateway.sdk.conformance import serve_mock

REPO = Path(__file__).resolve().parents[2]
BIN = Path(sys.executable).parent


def run(args: list[str], *, cwd: Path, pythonpath: Path | None = None, timeout: float = 120,
        **env: str) -> subprocess.CompletedProcess[str]:
    environ = {**os.environ, **env}
    if pythonpath is not None:
        environ["PYTHONPATH"] = str(pythonpath)
    return subprocess.run(args, cwd=cwd, env=environ, capture_output=True, text=True, timeout=timeout, check=False)


@pytest.fixture(scope="module")
def project(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return scaffold_adapter("water_board", tmp_path_factory.mktemp("scaffold"))


@pytest.fixture(scope="module")
def installed(project: Path) -> Path:
    """`pip install` of the generated project (a real wheel build) into its own directory."""
    site = project.parent / "site"
    done = run([sys.executable, "-m", "pip", "install", "--quiet", "--no-deps", "--target", str(site), str(project)],
               cwd=project.parent)
    assert done.returncode == 0, done.stdout + done.stderr
    return site


def test_the_package_has_adapter_table_mock_test_and_entry_point(project: Path) -> None:
    files = sorted(str(path.relative_to(project)) for path in project.rglob("*") if path.is_file())
    assert files == ["README.md", "pyproject.toml", "tests/test_conformance.py", "water_board_adapter/__init__.py",
                     "water_board_adapter/adapter.py", "water_board_adapter/status_table.yaml",
                     "water_board_mock/__init__.py", "water_board_mock/app.py"]
    pyproject = tomllib.loads((project / "pyproject.toml").read_text(encoding="utf-8"))
    assert pyproject["project"]["entry-points"]["gateway.adapters"] == {
        "water_board": "water_board_adapter.adapter:WaterBoardAdapter"}
    table = StatusTable.load(project / "water_board_adapter" / "status_table.yaml")
    assert table.department == "water_board" and {"rejection", "technical", "progress"} == {
        entry.kind for entry in table.entries.values()}


def test_the_generated_conformance_test_passes_as_generated(project: Path) -> None:
    done = run([sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests"], cwd=project,
               pythonpath=project)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 passed" in done.stdout


def test_the_generated_code_passes_ruff_and_mypy(project: Path) -> None:
    ruff = run([str(BIN / "ruff"), "check", "--no-cache", "."], cwd=project)
    assert ruff.returncode == 0, ruff.stdout + ruff.stderr
    # The venv has the gateway as an editable install mypy cannot follow; MYPYPATH shows it the SDK's source.
    mypy = run([str(BIN / "mypy"), "--cache-dir", str(project.parent / "mypy-cache"), "water_board_adapter",
                "water_board_mock", "tests"], cwd=project, MYPYPATH=str(REPO))
    assert mypy.returncode == 0, mypy.stdout + mypy.stderr


def test_the_installed_package_is_discovered(project: Path, installed: Path) -> None:
    discovered = run([sys.executable, "-c", "from gateway.departments.registry import discover; "
                      "found = discover()['water_board']; "
                      "print(found.cls.__module__, found.cls.__name__, found.distribution, found.version); "
                      "import inspect; print(inspect.getfile(found.cls))"],
                     cwd=project.parent, pythonpath=installed)
    assert discovered.returncode == 0, discovered.stderr
    described, source = discovered.stdout.splitlines()
    assert described.split() == ["water_board_adapter.adapter", "WaterBoardAdapter", "gateway-adapter-water-board",
                                 "0.1.0"]
    # Loaded from what pip installed (status table included as package data), not from the project directory.
    assert Path(source) == installed / "water_board_adapter" / "adapter.py"
    assert (installed / "water_board_adapter" / "status_table.yaml").is_file()


@pytest.fixture
def water_board_mock_url(installed: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    monkeypatch.syspath_prepend(str(installed))
    create_app = importlib.import_module("water_board_mock.app").create_app
    with serve_mock(create_app()) as url:
        yield url


def test_gateway_adapters_list_shows_it_up(installed: Path, water_board_mock_url: str) -> None:
    listed = run([str(BIN / "gateway"), "adapters", "list"], cwd=installed.parent, pythonpath=installed,
                 GATEWAY_ADAPTERS__WATER_BOARD__BASE_URL=water_board_mock_url)
    assert listed.returncode == 0, listed.stderr
    row = next(line.split() for line in listed.stdout.splitlines() if line.startswith("water_board "))
    assert row == ["water_board", "0.1.0", "gateway-adapter-water-board", "rest", "up", "water_board_application"]


@pytest.mark.parametrize("name", ["WaterBoard", "water-board", "1water", "water__board", "_water", "water_", "",
                                  "水务"])
def test_a_name_that_is_not_snake_case_is_refused(tmp_path: Path, name: str) -> None:
    with pytest.raises(ScaffoldError, match="not a snake_case Python identifier"):
        scaffold_adapter(name, tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_a_keyword_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match="is a Python keyword"):
        scaffold_adapter("lambda", tmp_path)


def test_an_installed_adapter_name_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ScaffoldError, match=r"'medical' is taken: .* installed from flex-employment-gateway"):
        scaffold_adapter("medical", tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_an_existing_directory_is_not_overwritten(tmp_path: Path) -> None:
    (tmp_path / "water_board").mkdir()
    (tmp_path / "water_board" / "mine.txt").write_text("keep me")
    with pytest.raises(ScaffoldError, match="already exists"):
        scaffold_adapter("water_board", tmp_path)
    assert [path.name for path in (tmp_path / "water_board").iterdir()] == ["mine.txt"]
