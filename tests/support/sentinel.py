"""A Redis primary, one replica and three Sentinels from the machine's `redis-server`, on free loopback ports.

Sentinel decides quickly here (down after 1 s, failover time-out 3 s) so a test sees a whole failover in seconds.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from pathlib import Path

import redis

from mocks.serving import free_port

MASTER_NAME = "gw-primary"


def redis_server_binary() -> str:
    """The Debian `redis-server` (it runs as a Sentinel with `--sentinel`)."""
    found = shutil.which("redis-server") or "/usr/bin/redis-server"
    if not Path(found).exists():
        raise RuntimeError("redis-server is not installed: apt-get install redis-server")
    return found


class SentinelCluster:
    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.binary = redis_server_binary()
        self.ports = {"a": free_port(), "b": free_port()}  # data servers; "a" starts as the primary
        self.sentinel_ports = [free_port() for _ in range(3)]
        self.processes: dict[str, subprocess.Popen[bytes]] = {}

    @property
    def sentinels(self) -> str:
        return ",".join(f"127.0.0.1:{port}" for port in self.sentinel_ports)

    @property
    def url(self) -> str:
        """What the gateway is given: `GATEWAY_REDIS_SENTINELS` + `GATEWAY_REDIS_MASTER_NAME` as one URL."""
        return f"redis+sentinel://{self.sentinels}/{MASTER_NAME}/0"

    def start(self) -> None:
        self.start_server("a")
        self.start_server("b", replica_of=self.ports["a"])
        for i, port in enumerate(self.sentinel_ports):
            config = self.folder / f"sentinel-{i}.conf"  # Sentinel rewrites its own file: one each
            config.write_text(
                f"port {port}\nbind 127.0.0.1\ndir {self.folder}\n"
                f"sentinel monitor {MASTER_NAME} 127.0.0.1 {self.ports['a']} 2\n"
                f"sentinel down-after-milliseconds {MASTER_NAME} 1000\n"
                f"sentinel failover-timeout {MASTER_NAME} 3000\n"
                f"sentinel parallel-syncs {MASTER_NAME} 1\n")
            self._spawn(f"sentinel-{i}", [str(config), "--sentinel"], port)
        deadline = time.monotonic() + 20
        while not self._replica_online():  # the replica has synced and the Sentinels know both
            if time.monotonic() > deadline:
                raise RuntimeError(f"replica did not sync: {self.log('b')}")
            time.sleep(0.1)

    def start_server(self, name: str, replica_of: int | None = None) -> None:
        data = self.folder / name
        data.mkdir(exist_ok=True)
        args = ["--port", str(self.ports[name]), "--bind", "127.0.0.1", "--dir", str(data), "--appendonly", "yes",
                "--appendfsync", "everysec", "--save", ""]
        if replica_of:
            args += ["--replicaof", "127.0.0.1", str(replica_of)]
        self._spawn(name, args, self.ports[name])

    def _spawn(self, name: str, args: list[str], port: int) -> None:
        log = open(self.folder / f"{name}.log", "ab")  # noqa: SIM115 - kept open for the process's life
        self.processes[name] = subprocess.Popen([self.binary, *args], stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 10
        while True:
            try:
                if redis.Redis(port=port, socket_connect_timeout=0.5).ping():
                    return
            except (redis.ConnectionError, OSError):
                pass
            if self.processes[name].poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"{name} did not start: {self.log(name)}")
            time.sleep(0.05)

    def log(self, name: str) -> str:
        return (self.folder / f"{name}.log").read_text(errors="replace")[-2000:]

    def sentinel(self, i: int = 0) -> redis.Redis:
        return redis.Redis(port=self.sentinel_ports[i], decode_responses=True, socket_timeout=2)

    def primary_port(self) -> int:
        """The primary as the Sentinels' majority sees it now."""
        votes: dict[int, int] = {}
        for i in range(len(self.sentinel_ports)):
            try:
                _, port = self.sentinel(i).sentinel_get_master_addr_by_name(MASTER_NAME)
            except (redis.RedisError, TypeError):
                continue
            votes[int(port)] = votes.get(int(port), 0) + 1
        return max(votes, key=lambda p: votes[p])

    def name_of(self, port: int) -> str:
        return next(name for name, p in self.ports.items() if p == port)

    def _replica_online(self) -> bool:
        try:
            replicas = self.sentinel().sentinel_slaves(MASTER_NAME)
        except redis.RedisError:
            return False
        return any("s_down" not in r["flags"] and r.get("master-link-status") == "ok" for r in replicas)

    def kill(self, name: str) -> None:
        self.processes[name].kill()
        self.processes[name].wait(10)

    def wait_promoted(self, old_primary: int, timeout: float = 30.0) -> int:
        """The new primary's port once the Sentinels agree on one and it answers as a primary."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            port = self.primary_port()
            if port != old_primary:
                try:
                    if redis.Redis(port=port, decode_responses=True).info("replication")["role"] == "master":
                        return port
                except redis.RedisError:
                    pass
            time.sleep(0.1)
        raise AssertionError(f"no failover in {timeout} s: {self.log('sentinel-0')}")

    def wait_replica_synced(self, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while not self._replica_online():
            assert time.monotonic() < deadline, self.log("sentinel-0")
            time.sleep(0.1)

    def stop(self) -> None:
        for process in self.processes.values():
            if process.poll() is None:
                process.terminate()
        for process in self.processes.values():
            try:
                process.wait(10)
            except subprocess.TimeoutExpired:
                process.kill()
