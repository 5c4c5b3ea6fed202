"""What a worker invocation costs apart from its compute.

A trivial handler (echo) through spirtd.workers.pool.WorkerPool, one
invocation at a time, N times per scenario:
  warm         pre-started workers: the cost is the pipe round trip (JSON
               line out, JSON line back) plus the pool's bookkeeping;
  cold         a fresh process per invocation (a serverless cold start):
               interpreter start + handler import + first call + the pool;
  cold+torch   the same with a handler module that imports torch, as a
               real gradient handler does;
and the throughput of warm invocations with `concurrency` workers at once.

Columns: total = invoke() called to returned; start = waiting for a ready
worker (cold: the process start and import); run = request sent to reply
read; handler = the handler's own time in the worker; overhead = total -
handler. Medians (and p90 of total) after one warm-up invocation.

Prints a table, then one JSON line with every figure. Compare ratios, not
times: these machines are shared and noisy.

    python bench/worker.py [--quick] [--warm N] [--cold N] [--cold-torch N]

Training throughput (--training, on by default): minibatches per second of
real rounds on one peer (the real gradient handler in 1, 2 and 4 warm
workers, in-store mean and SGD step) beside plain single-process torch
training of the same model and batch size, in the same run.

Each scenario is one function returning its rows.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from spirtd.clock import SystemClock
from spirtd.workers.pool import InvocationResult, WorkerPool
from spirtd.workers.config import PoolConfig, PoolMode

sys.path.insert(0, str(Path(__file__).resolve().parent))
from worker_training import measure_training, training_table  # noqa: E402

HERE = Path(__file__).resolve().parent
ENV = {"PYTHONPATH": str(HERE)}  # the workers import worker_handlers*
ECHO = "worker_handlers:echo"
ECHO_TORCH = "worker_handlers_torch:echo"
WARMUP = 1
MS = 1e3
THROUGHPUT_CONCURRENCY = 2
COUNTS = {"warm": 1000, "cold": 30, "cold+torch": 8, "throughput": 2000}
QUICK_COUNTS = {"warm": 200, "cold": 8, "cold+torch": 3, "throughput": 400}


@dataclass(frozen=True)
class Measurement:
    name: str
    mode: str
    handler: str
    results: tuple[InvocationResult, ...]
    pool_start_s: float  # entering the pool (warm: every worker started and ready)

    def row(self) -> dict[str, Any]:
        def med(values: list[float]) -> float:
            return statistics.median(values) * MS

        total = [r.timings.total_s for r in self.results]
        return {
            "name": self.name,
            "mode": self.mode,
            "handler": self.handler,
            "n": len(self.results),
            "total_median_ms": med(total),
            "total_p90_ms": statistics.quantiles(total, n=10)[-1] * MS if len(total) > 1 else total[0] * MS,
            "start_median_ms": med([r.timings.start_s for r in self.results]),
            "run_median_ms": med([r.timings.run_s for r in self.results]),
            "handler_median_ms": med([r.timings.handler_s for r in self.results]),
            "overhead_median_ms": med([r.timings.total_s - r.timings.handler_s for r in self.results]),
            "pool_start_ms": self.pool_start_s * MS,
        }


async def measure_latency(name: str, mode: PoolMode, handler: str, n: int) -> Measurement:
    """n invocations one after another (after a warm-up), on one worker slot."""
    clock = SystemClock()
    config = PoolConfig(mode=mode, concurrency=1)
    begin = clock.monotonic()
    async with WorkerPool(config, handler, clock=clock, env=ENV) as pool:
        pool_start_s = clock.monotonic() - begin
        for i in range(WARMUP):
            await pool.invoke({"id": f"warm-up {i}"})
        results = [await pool.invoke({"id": i}) for i in range(n)]
    return Measurement(name, mode.value, handler, tuple(results), pool_start_s)


async def measure_throughput(n: int, concurrency: int) -> dict[str, Any]:
    """Warm echo invocations per second with `concurrency` in flight."""
    clock = SystemClock()
    async with WorkerPool(PoolConfig(concurrency=concurrency), ECHO, clock=clock, env=ENV) as pool:
        await asyncio.gather(*(pool.invoke({"id": f"warm-up {i}"}) for i in range(concurrency)))
        begin = clock.monotonic()
        await asyncio.gather(*(pool.invoke({"id": i}) for i in range(n)))
        elapsed = clock.monotonic() - begin
    return {"name": "warm throughput", "concurrency": concurrency, "n": n, "invocations_per_s": n / elapsed}


def table(rows: list[dict[str, Any]]) -> str:
    head = (
        "| scenario | n | total (median) | total (p90) | start | run | handler | overhead |\n"
        "|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['name']} | {r['n']} | {r['total_median_ms']:.2f} ms | {r['total_p90_ms']:.2f} ms "
        f"| {r['start_median_ms']:.2f} ms | {r['run_median_ms']:.3f} ms | {r['handler_median_ms']:.4f} ms "
        f"| {r['overhead_median_ms']:.2f} ms |"
        for r in rows
    ]
    return head + "\n".join(lines)


async def run(counts: dict[str, int]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    rows = []
    for name, mode, handler in (
        ("warm", PoolMode.WARM, ECHO),
        ("cold", PoolMode.COLD, ECHO),
        ("cold+torch", PoolMode.COLD, ECHO_TORCH),
    ):
        rows.append((await measure_latency(name, mode, handler, counts[name])).row())
        print(f"  measured {name}", file=sys.stderr, flush=True)
    throughput = await measure_throughput(counts["throughput"], THROUGHPUT_CONCURRENCY)
    return rows, throughput


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer invocations")
    parser.add_argument("--no-training", action="store_true", help="skip the training throughput")
    for name in ("warm", "cold", "cold-torch"):
        parser.add_argument(f"--{name}", type=int, default=None, help=f"invocations in the {name} scenario")
    args = parser.parse_args()
    counts = dict(QUICK_COUNTS if args.quick else COUNTS)
    for name, value in (("warm", args.warm), ("cold", args.cold), ("cold+torch", args.cold_torch)):
        if value is not None:
            counts[name] = value
    rows, throughput = asyncio.run(run(counts))
    training = [] if args.no_training else asyncio.run(measure_training(quick=args.quick))
    by_name = {r["name"]: r for r in rows}
    print(table(rows))
    print(f"warm throughput, {throughput['concurrency']} at once: {throughput['invocations_per_s']:.0f} invocations/s")
    if training:
        print()
        print(training_table(training))
    print(
        json.dumps(
            {
                "bench": "worker",
                "rows": rows,
                "throughput": throughput,
                "training": training,
                "cold_over_warm": by_name["cold"]["total_median_ms"] / by_name["warm"]["total_median_ms"],
                "torch_import_ms": by_name["cold+torch"]["start_median_ms"] - by_name["cold"]["start_median_ms"],
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
