"""Our task stream beside arq: the same number of no-op tasks queued and worked through the same Redis.

    .venv/bin/python -m bench.dispatch [--tasks 20000] [--concurrency 16] [--redis-url URL] [--quick]

Ours: `TaskQueue.enqueue` (XADD to the task stream) from `concurrency` producers, then the worker's own loop
(`ConsumerLoop` with `TaskQueue.promote_due` before every read, as `gateway worker` runs it) with a handler that does
nothing, each entry acknowledged (XACK + XDEL); done when every task is acknowledged.
arq 0.28: `ArqRedis.enqueue_job` from as many producers, then a burst `Worker` with `max_jobs=concurrency` and
`keep_result=0` (nothing kept after a job), once with arq's default `poll_delay` (0.5 s) and once with 0.

Figures: tasks/s queued, tasks/s worked (from the first read to the last acknowledgement), and both together. The
database is FLUSHED before each run: give this benchmark a database of its own. One process, one event loop for
producer and worker; a shared 2-core machine is noisy, so compare rows of one run.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from rich.progress import Progress, TaskID

from bench import MACHINE_REDIS, flush, redis_version, write_results
from gateway.settings import Settings
from gateway.store.connection import connect
from gateway.store.consumer import ConsumerLoop, Entry
from gateway.store.queue import TaskQueue, depths


async def produce(count: int, concurrency: int, enqueue: Callable[[int], Awaitable[Any]]) -> float:
    """Seconds to queue `count` tasks from `concurrency` producers."""
    numbers = iter(range(count))

    async def producer() -> None:
        for n in numbers:  # the producers share one iterator: each task is queued once
            await enqueue(n)

    started = time.perf_counter()
    await asyncio.gather(*(producer() for _ in range(concurrency)))
    return time.perf_counter() - started


def row(name: str, count: int, queued_s: float, worked_s: float) -> dict[str, Any]:
    return {"dispatcher": name, "tasks": count, "queued_per_s": round(count / queued_s),
            "worked_per_s": round(count / worked_s), "both_per_s": round(count / (queued_s + worked_s))}


async def ours(url: str, count: int, concurrency: int, progress: Progress, bar: TaskID) -> dict[str, Any]:
    redis = connect(url, Settings())
    queue = TaskQueue(redis, consumer="bench-dispatch")
    await queue.ensure_group()
    done = asyncio.Event()
    worked = 0

    async def noop(entry: Entry) -> bool:
        nonlocal worked
        worked += 1
        progress.advance(bar)
        if worked == count:
            done.set()
        return True

    async def give_up(entry: Entry, exc: Exception) -> None:
        raise SystemExit(f"a no-op task failed: {exc!r}")

    try:
        queued_s = await produce(count, concurrency, lambda n: queue.enqueue(f"case-{n}", "noop"))
        loop = ConsumerLoop(consumer=queue.stream, handle=noop, give_up=give_up, order_key=lambda entry: entry[0],
                            concurrency=concurrency, each_round=queue.promote_due)
        started = time.perf_counter()
        runner = asyncio.create_task(loop.run(done))
        await done.wait()
        worked_s = time.perf_counter() - started
        await runner
        queued = await depths(redis)
        left = queued.tasks_pending + queued.tasks
        if left:
            raise SystemExit(f"our stream still holds {left} entries after every task was handled")
        return row("gateway task stream", count, queued_s, worked_s)
    finally:
        await redis.aclose()


async def noop_job(ctx: dict[str, Any], n: int) -> None:
    bar = ctx["bar"]
    ctx["progress"].advance(bar)


async def arq(url: str, count: int, concurrency: int, poll_delay: float, progress: Progress,
              bar: TaskID) -> dict[str, Any]:
    from arq import Worker, create_pool
    from arq.connections import RedisSettings

    settings = RedisSettings.from_dsn(url)
    pool = await create_pool(settings)
    try:
        queued_s = await produce(count, concurrency, lambda n: pool.enqueue_job("noop_job", n))
        worker = Worker(functions=[noop_job], redis_pool=pool, burst=True, max_jobs=concurrency, keep_result=0,
                        poll_delay=poll_delay, handle_signals=False, ctx={"progress": progress, "bar": bar})
        started = time.perf_counter()
        await worker.main()
        worked_s = time.perf_counter() - started
        if worker.jobs_complete != count:
            raise SystemExit(f"arq completed {worker.jobs_complete} of {count} jobs")
        return row(f"arq {_arq_version()} (poll_delay {poll_delay:g} s)", count, queued_s, worked_s)
    finally:
        await pool.aclose()


def _arq_version() -> str:
    from importlib.metadata import version

    return version("arq")


async def run(url: str, count: int, concurrency: int) -> list[dict[str, Any]]:
    runs: list[tuple[str, Callable[[Progress, TaskID], Awaitable[dict[str, Any]]]]] = [
        ("ours", lambda p, b: ours(url, count, concurrency, p, b)),
        ("arq, poll_delay 0.5 s", lambda p, b: arq(url, count, concurrency, 0.5, p, b)),
        ("arq, poll_delay 0", lambda p, b: arq(url, count, concurrency, 0.0, p, b)),
    ]
    rows = []
    with Progress(transient=True) as progress:
        for label, measure in runs:
            flush(url)
            bar = progress.add_task(label, total=count)
            rows.append(await measure(progress, bar))
            progress.remove_task(bar)
    flush(url)
    return rows


def show(rows: list[dict[str, Any]]) -> None:
    head = f"{'dispatcher':34} {'tasks':>7} {'queued/s':>9} {'worked/s':>9} {'both/s':>8}"
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r['dispatcher']:34} {r['tasks']:>7} {r['queued_per_s']:>9} {r['worked_per_s']:>9} "
              f"{r['both_per_s']:>8}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tasks", type=int, default=20000, help="no-op tasks per dispatcher (default 20000)")
    parser.add_argument("--concurrency", type=int, default=16,
                        help="producers, and tasks in hand in the worker (default 16, the worker's default)")
    parser.add_argument("--redis-url", default=MACHINE_REDIS, help=f"its database is FLUSHED (default {MACHINE_REDIS})")
    parser.add_argument("--quick", action="store_true", help="500 tasks (smoke)")
    args = parser.parse_args()
    logging.getLogger("arq").setLevel(logging.WARNING)
    count = 500 if args.quick else args.tasks
    print(f"dispatch: {count} no-op tasks, concurrency {args.concurrency}, Redis {redis_version(args.redis_url)} "
          f"at {args.redis_url}")
    rows = asyncio.run(run(args.redis_url, count, args.concurrency))
    show(rows)
    write_results("dispatch_quick" if args.quick else "dispatch", {"redis": args.redis_url,
                                                                   "concurrency": args.concurrency, "rows": rows})


if __name__ == "__main__":
    main()
