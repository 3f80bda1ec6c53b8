"""What a test needs from the machine beyond the lock, installed by the test's own set-up when it is missing."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

# arq is only bench.dispatch's yardstick. arq 0.28 declares redis-py < 6, so it cannot sit in the lock beside
# redis-py 8 (it runs on 8 unchanged): it is installed without its dependencies into a folder of its own and put on the
# benchmark's PYTHONPATH, leaving the project's venv as the lock made it.
ARQ = "arq==0.28.0"


def apt_install(*packages: str) -> None:
    subprocess.run(["apt-get", "update"], check=True, capture_output=True)
    subprocess.run(["apt-get", "install", "-y", *packages], check=True, capture_output=True)


def debian_binary(path: str, package: str) -> str:
    """The Debian program at `path`, its package installed first when the machine lacks it."""
    if not Path(path).exists():
        apt_install(package)
    return path


def arq_folder() -> str:
    folder = Path(tempfile.gettempdir()) / f"gw-tests-{ARQ.replace('==', '-')}"
    if not (folder / "arq" / "__init__.py").exists():
        subprocess.run([sys.executable, "-m", "pip", "install", "-q", "--disable-pip-version-check", "--no-deps",
                        "--target", str(folder), ARQ], check=True, capture_output=True)
    return str(folder)
