"""A newcomer's first run: the committed HEAD cloned into an empty folder (no ../shared beside it), then `./run test`
there, which creates .venv from requirements.lock alone. Quick mode: one fast unit module after ruff and mypy."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def locked_versions(lock: Path) -> dict[str, str]:
    pins = re.findall(r"^([A-Za-z0-9_.-]+)==(\S+)", lock.read_text(), flags=re.M)
    return {re.sub(r"[-_.]+", "-", name).lower(): version for name, version in pins}


def test_a_fresh_clone_passes_run_test_without_shared_and_installs_the_lock(tmp_path):
    clone = tmp_path / "newcomer" / "gateway"
    subprocess.run(["git", "clone", "--quiet", str(REPO), str(clone)], check=True, timeout=120)
    assert list(clone.parent.iterdir()) == [clone]  # nothing beside the checkout
    # The machine's pip cache is used as is; only this checkout's own virtualenv must not leak in.
    env = {k: v for k, v in os.environ.items() if k not in ("VIRTUAL_ENV", "PYTHONPATH")}
    result = subprocess.run(["./run", "test", "tests/unit/test_working_days.py", "-x"], cwd=clone, env=env,
                            capture_output=True, text=True, timeout=1800)
    output = result.stdout + result.stderr
    assert result.returncode == 0, output[-3000:]
    assert re.search(r"^\d+ passed", result.stdout, flags=re.M), result.stdout[-2000:]
    assert "platform contract smoke NOT run" in result.stdout
    frozen = subprocess.run([str(clone / ".venv" / "bin" / "python"), "-m", "pip", "freeze", "--all",
                             "--exclude-editable"], capture_output=True, text=True, check=True).stdout
    installed = {re.sub(r"[-_.]+", "-", name).lower(): version
                 for name, version in (line.split("==", 1) for line in frozen.splitlines() if "==" in line)}
    installed.pop("pip")  # the venv's own installer, not a dependency
    assert installed == locked_versions(clone / "requirements.lock")
