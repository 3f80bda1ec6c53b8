"""Looking at a command's child processes through /proc (Linux): which are alive, and which hold which connections."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import httpx

from mocks.serving import free_port


def children_of(pid: int) -> set[int]:
    found = set()
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[1]) == pid:
            found.add(int(stat.parent.name))
    return found


def alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]
    except OSError:
        return False
    return state != "Z"


def accepted_connections(pid: int, port: int) -> int:
    """Established TCP connections (IPv4) on local `port` whose socket this process holds: the ones it accepted."""
    inodes = set()
    for fd in Path(f"/proc/{pid}/fd").iterdir():
        try:
            target = fd.readlink().name
        except OSError:
            continue
        if target.startswith("socket:["):
            inodes.add(target[len("socket:["):-1])
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        fields = line.split()
        local_port, state, inode = int(fields[1].split(":")[1], 16), fields[3], fields[9]
        count += local_port == port and state == "01" and inode in inodes  # 01: ESTABLISHED
    return count


GATEWAY = str(Path(sys.executable).parent / "gateway")
REPO = Path(__file__).resolve().parents[2]


@dataclass(frozen=True)
class GatewayUp:
    """`gateway up` started as a newcomer starts it: the real command, no GATEWAY_* setting, its own var folder."""

    process: subprocess.Popen[bytes]
    base_url: str
    var: Path
    log: Path
    app_id: str  # the demo caller `up` printed
    secret: str

    @property
    def identity_key(self) -> Path:
        return self.var / "identity" / "demo-idp-key.pem"

    def stop(self) -> int:
        """SIGTERM to `gateway up` alone (it must stop its children itself); its exit code."""
        self.process.send_signal(signal.SIGTERM)
        return self.process.wait(60)


def start_gateway_up(tmp_path: Path) -> GatewayUp:
    """Started and ready (`/readyz` 200), or the test fails with its output."""
    port, var, log = free_port(), tmp_path / "var", tmp_path / "up.log"
    env = {k: v for k, v in os.environ.items() if not k.startswith(("GATEWAY_", "MOCK_"))}
    env.update(GATEWAY_VAR_DIR=str(var), PYTHONUNBUFFERED="1")
    with log.open("wb") as out:
        process = subprocess.Popen([GATEWAY, "up", "--port", str(port)], cwd=REPO, env=env, stdout=out,
                                   stderr=subprocess.STDOUT, start_new_session=True)
    base_url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 90
    while True:
        if process.poll() is not None or time.monotonic() > deadline:
            if process.poll() is None:
                process.kill()
            raise AssertionError(f"gateway up did not become ready:\n{log.read_text()[-3000:]}")
        try:
            if httpx.get(base_url + "/readyz").status_code == 200:
                break
        except httpx.HTTPError:
            pass
        time.sleep(0.3)
    caller = re.search(r"demo caller: app_id=(\S+) secret=(\S+)", log.read_text())
    if caller is None:
        process.send_signal(signal.SIGTERM)
        raise AssertionError(f"gateway up printed no demo caller:\n{log.read_text()[-3000:]}")
    return GatewayUp(process, base_url, var, log, caller.group(1), caller.group(2))
