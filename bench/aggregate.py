"""In-database aggregation against pulling the gradients into the client.

For K gradients of M float32 elements already in the store, one run measures:
  (a) pull: read every gradient out, average with numpy, write the result back
      (the strongest client-side way: pipelined reads, hiredis, in-place adds);
  (b) SPIRT.AGGREGATE mean inside the store;
  (c) SPIRT.AGGREGATE median and krum (f = 2) inside the store;
  (d) floor: numpy summing the same arrays inside one process (no transfer).
Targets: (b) takes >= 95% less time than (a) and at most 2x (d).

With a real RedisAI at hand (../shared/redisai/serve, or
SPIRTD_BENCH_REDISAI_URL=redis://...), the same sizes against it, in the
same run: (a') pull+numpy from RedisAI, (e) the RedisAI backend's mean
(spirtd's TorchScript, float64 accumulation, through the store API), (f)
RedisAI's plain `torch.stack(t).mean(0)`. Targets: (e) takes less time than
(a') and at most 1.2x (f).

Prints a table, then one JSON line with every figure. Times are medians of
several runs after a warm-up; compare the ratios, not the times (shared,
noisy machines).

    python bench/aggregate.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import redis

from spirtd.store import connect
from spirtd.store.embedded import EmbeddedStore
from spirtd.store.server import StoreServerConfig

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from tests import redisai_server  # noqa: E402 - the RedisAI of the tests, when it is there

REDISAI_URL_ENV = "SPIRTD_BENCH_REDISAI_URL"
REDISAI_VS_PLAIN_TARGET = 1.2
PLAIN_MEAN = """
def plain_mean(tensors: List[Tensor], keys: List[str], args: List[str]):
    return [torch.stack(tensors).mean(0)]
"""
SIZES = [(8, 2_540_000), (20, 2_540_000), (8, 11_700_000), (20, 11_700_000)]
QUICK_SIZES = [(8, 2_540_000)]
MODELS = {2_540_000: "MobileNetV3-small", 11_700_000: "ResNet-18"}
KRUM_F = 2
MEAN_TARGET_SAVING = 0.95
FLOOR_TARGET_RATIO = 2.0


def median_ms(fn: Callable[[], object], reps: int) -> float:
    fn()  # warm-up: first touches of fresh memory are not what we measure
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


def floor_mean(arrays: list[np.ndarray]) -> np.ndarray:
    acc = arrays[0].copy()
    for a in arrays[1:]:
        np.add(acc, a, out=acc)
    acc *= np.float32(1.0 / len(arrays))
    return acc


def pull_mean(r: redis.Redis, keys: list[str], n: int) -> None:
    pipe = r.pipeline(transaction=False)
    for key in keys:
        pipe.execute_command("AI.TENSORGET", key, "BLOB")
    arrays = [np.frombuffer(blob, dtype=np.float32) for blob in pipe.execute()]
    result = floor_mean(arrays)
    r.execute_command("AI.TENSORSET", "bench:pulled", "FLOAT", n, "BLOB", memoryview(result))


def measure(r: redis.Redis, k: int, n: int, reps: int, rng: np.random.Generator) -> dict:
    arrays = [rng.standard_normal(n, dtype=np.float32) for _ in range(k)]
    keys = [f"bench:grad:{i}" for i in range(k)]
    for key, a in zip(keys, arrays):
        r.execute_command("AI.TENSORSET", key, "FLOAT", n, "BLOB", memoryview(a))

    def in_db(rule: str, *options: object) -> Callable[[], object]:
        return lambda: r.execute_command(
            "SPIRT.AGGREGATE", "bench:out", rule, "INPUTS", k, *keys, *options
        )

    row = {
        "k": k,
        "m": n,
        "model": MODELS.get(n, ""),
        "pull_ms": median_ms(lambda: pull_mean(r, keys, n), reps),
        "db_mean_ms": median_ms(in_db("mean"), reps),
        "db_median_ms": median_ms(in_db("median"), max(1, reps // 2)),
        "db_krum_ms": median_ms(in_db("krum", "F", KRUM_F), max(1, reps // 2)),
        "floor_ms": median_ms(lambda: floor_mean(arrays), reps),
    }
    in_db("mean")()
    got = np.frombuffer(r.execute_command("AI.TENSORGET", "bench:out", "BLOB"), np.float32)
    np.testing.assert_allclose(got, floor_mean(arrays), rtol=1e-4, atol=1e-5)
    r.delete(*keys, "bench:out", "bench:pulled")
    row["db_mean_saving"] = 1 - row["db_mean_ms"] / row["pull_ms"]
    row["db_mean_vs_floor"] = row["db_mean_ms"] / row["floor_ms"]
    row["meets_targets"] = (
        row["db_mean_saving"] >= MEAN_TARGET_SAVING and row["db_mean_vs_floor"] <= FLOOR_TARGET_RATIO
    )
    return row


def table(rows: list[dict]) -> str:
    head = (
        "| K | M (model) | (a) pull+numpy | (b) in-DB mean | (c) median | (c) krum f=2 "
        "| (d) numpy floor | (b) vs (a) | (b) / (d) |\n"
        "|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = [
        f"| {r['k']} | {r['m'] / 1e6:.2f}M ({r['model']}) | {r['pull_ms']:.1f} ms "
        f"| {r['db_mean_ms']:.1f} ms | {r['db_median_ms']:.0f} ms | {r['db_krum_ms']:.0f} ms "
        f"| {r['floor_ms']:.1f} ms | {100 * r['db_mean_saving']:.1f}% less "
        f"| {r['db_mean_vs_floor']:.2f}x |"
        for r in rows
    ]
    return head + "\n".join(lines)


async def median_async_ms(fn, reps: int) -> float:
    await fn()
    times = []
    for _ in range(reps):
        start = time.perf_counter()
        await fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times) * 1e3


async def measure_redisai(url: str, k: int, n: int, reps: int, rng: np.random.Generator) -> dict:
    r = redis.Redis.from_url(url)
    store = await connect(url, backend="redisai")
    arrays = [rng.standard_normal(n, dtype=np.float32) for _ in range(k)]
    keys = [f"bench:grad:{i}" for i in range(k)]
    try:
        for key, a in zip(keys, arrays):
            r.execute_command("AI.TENSORSET", key, "FLOAT", n, "BLOB", memoryview(a))
        r.execute_command("AI.SCRIPTSTORE", "bench:plain", "CPU", "ENTRY_POINTS", 1, "plain_mean",
                          "SOURCE", PLAIN_MEAN)  # fmt: skip
        plain = lambda: r.execute_command("AI.SCRIPTEXECUTE", "bench:plain", "plain_mean", "KEYS", k + 1,  # noqa: E731
                                          *keys, "bench:plain-out", "INPUTS", k, *keys, "OUTPUTS", 1,
                                          "bench:plain-out")  # fmt: skip
        row = {"k": k, "m": n, "model": MODELS.get(n, ""),
               "pull_ms": median_ms(lambda: pull_mean(r, keys, n), reps),
               "backend_mean_ms": await median_async_ms(lambda: store.aggregate("bench:out", "mean", keys), reps),
               "plain_mean_ms": median_ms(plain, reps)}  # fmt: skip
        got = await store.get("bench:out")
        np.testing.assert_array_equal(got, np.asarray(floor_mean_exact(arrays)))
        r.delete(*keys, "bench:out", "bench:pulled", "bench:plain-out")
    finally:
        await store.aclose()
        r.close()
    row["backend_vs_pull"] = row["backend_mean_ms"] / row["pull_ms"]
    row["backend_vs_plain"] = row["backend_mean_ms"] / row["plain_mean_ms"]
    row["meets_targets"] = row["backend_vs_pull"] < 1 and row["backend_vs_plain"] <= REDISAI_VS_PLAIN_TARGET
    return row


def floor_mean_exact(arrays: list[np.ndarray]) -> np.ndarray:
    """The numpy reference's mean (float64 sum in order, one rounding)."""
    from spirtd.aggregation import aggregate

    return aggregate("mean", arrays).value


async def run_redisai(sizes: list[tuple[int, int]], reps: int) -> list[dict]:
    """The RedisAI rows, or none when no RedisAI is at hand."""
    url = os.environ.get(REDISAI_URL_ENV)
    with contextlib.ExitStack() as stack:
        if url is None:
            if not redisai_server.SERVE.is_file():
                print("  no RedisAI: skipping its rows", file=sys.stderr)
                return []
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory(prefix="sprai-", dir="/tmp")))
            url, _ = stack.enter_context(redisai_server.serve(folder))
        rng = np.random.default_rng(0)
        rows = []
        for k, n in sizes:
            rows.append(await measure_redisai(url, k, n, reps if n < 5_000_000 else max(3, reps - 2), rng))
            print(f"  measured RedisAI K={k} M={n}", file=sys.stderr, flush=True)
        return rows


def redisai_table(rows: list[dict]) -> str:
    head = ("| K | M (model) | (a') pull+numpy | (e) RedisAI backend mean | (f) RedisAI stack().mean(0) "
            "| (e) / (a') | (e) / (f) |\n|---|---|---|---|---|---|---|\n")  # fmt: skip
    return head + "\n".join(
        f"| {r['k']} | {r['m'] / 1e6:.2f}M ({r['model']}) | {r['pull_ms']:.1f} ms | {r['backend_mean_ms']:.1f} ms "
        f"| {r['plain_mean_ms']:.1f} ms | {r['backend_vs_pull']:.2f}x | {r['backend_vs_plain']:.2f}x |"
        for r in rows
    )


async def run(sizes: list[tuple[int, int]], reps: int) -> list[dict]:
    with tempfile.TemporaryDirectory(prefix="spb-", dir="/tmp") as tmp:
        cfg = StoreServerConfig(data_dir=Path(tmp) / "store", persistence="none")
        async with EmbeddedStore(cfg) as store:
            r = redis.Redis(unix_socket_path=str(store.socket_path), password=store.password)
            rng = np.random.default_rng(0)
            rows = []
            for k, n in sizes:
                rows.append(measure(r, k, n, reps if n < 5_000_000 else max(3, reps - 2), rng))
                print(f"  measured K={k} M={n}", file=sys.stderr, flush=True)
            r.close()
            return rows


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="one small size only")
    parser.add_argument("--reps", type=int, default=7)
    args = parser.parse_args()
    sizes = QUICK_SIZES if args.quick else SIZES
    rows = asyncio.run(run(sizes, args.reps))
    redisai_rows = asyncio.run(run_redisai(sizes, args.reps))
    print(table(rows))
    if redisai_rows:
        print()
        print(redisai_table(redisai_rows))
    print(
        json.dumps(
            {
                "bench": "aggregate",
                "targets": {"mean_saving": MEAN_TARGET_SAVING, "floor_ratio": FLOOR_TARGET_RATIO,
                            "redisai_vs_plain": REDISAI_VS_PLAIN_TARGET},
                "meets_targets": all(r["meets_targets"] for r in rows + redisai_rows),
                "rows": rows,
                "redisai_rows": redisai_rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
