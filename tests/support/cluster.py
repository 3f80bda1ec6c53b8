"""A real Redis Cluster of three masters from the machine's `redis-server`, on free loopback ports, for tests and the
cluster benchmark: started, joined with `redis-cli --cluster create`, and stopped with its files removed."""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from pathlib import Path

import redis
from redis.cluster import RedisCluster

REDIS_SERVER = shutil.which("redis-server") or "/usr/bin/redis-server"
REDIS_CLI = shutil.which("redis-cli") or "/usr/bin/redis-cli"


def free_port() -> int:
    """A port free now, whose +10000 bus port is free too (a cluster node listens on both)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if port + 10000 > 65535:
            continue
        with socket.socket() as bus:
            try:
                bus.bind(("127.0.0.1", port + 10000))
            except OSError:
                continue
        return port


class LocalCluster:
    def __init__(self, masters: int = 3) -> None:
        self.folder = Path(tempfile.mkdtemp(prefix="gw-cluster-"))
        self.ports = [free_port() for _ in range(masters)]
        self.processes: list[subprocess.Popen[bytes]] = []

    @property
    def url(self) -> str:
        """What the gateway is given (GATEWAY_REDIS_CLUSTER=1 with this node's URL, as one string)."""
        return f"redis+cluster://127.0.0.1:{self.ports[0]}"

    def start(self) -> LocalCluster:
        for port in self.ports:
            node = self.folder / str(port)
            node.mkdir()
            self.processes.append(subprocess.Popen(
                [REDIS_SERVER, "--port", str(port), "--bind", "127.0.0.1", "--cluster-enabled", "yes",
                 "--cluster-config-file", str(node / "nodes.conf"), "--cluster-node-timeout", "5000",
                 "--dir", str(node), "--save", "", "--appendonly", "no", "--protected-mode", "no"],
                stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL))
        for port in self.ports:
            self._wait(lambda p=port: redis.Redis(port=p, socket_connect_timeout=0.2).ping())
        subprocess.run([REDIS_CLI, "--cluster", "create", *(f"127.0.0.1:{p}" for p in self.ports),
                        "--cluster-replicas", "0", "--cluster-yes"],
                       check=True, stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT, timeout=60)
        self._wait(self._ready)
        return self

    def _ready(self) -> bool:
        for port in self.ports:
            info = redis.Redis(port=port, decode_responses=True).cluster("info")
            if info.get("cluster_state") != "ok":
                return False
        client = self.client()
        try:
            return bool(client.set("gw:cluster-ready", "1")) and client.delete("gw:cluster-ready") == 1
        finally:
            client.close()

    @staticmethod
    def _wait(check: object, timeout: float = 30.0) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if check():  # type: ignore[operator]
                    return
            except (redis.RedisError, OSError):
                pass
            if time.monotonic() > deadline:
                raise RuntimeError("the local Redis Cluster did not come up")
            time.sleep(0.1)

    def client(self) -> RedisCluster:
        return RedisCluster(host="127.0.0.1", port=self.ports[0], decode_responses=True)

    def stop(self) -> None:
        for process in self.processes:
            process.terminate()
        for process in self.processes:
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()
        shutil.rmtree(self.folder, ignore_errors=True)
