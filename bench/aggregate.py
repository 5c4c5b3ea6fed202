"""In-database aggregation against pulling the gradients into the client.

For K gradients of M float32 elements already in the store, one run measures:
  (a) pull: read every gradient out, average with numpy, write the result back
      (the strongest client-side way: pipelined reads, hiredis, in-place adds);
  (b) SPIRT.AGGREGATE mean inside the store;
  (c) SPIRT.AGGREGATE median and krum (f = 2) inside the store;
  (d) floor: numpy summing the same arrays inside one process (no transfer).
Targets: (b) takes >= 95% less time than (a) and at most 2x (d).

Prints a table, then one JSON line with every figure. Times are medians of
several runs after a warm-up; compare the ratios, not the times (shared,
noisy machines).

    python bench/aggregate.py [--quick]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np
import redis

from spirtd.store.embedded import EmbeddedStore
from spirtd.store.server import StoreServerConfig

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
    rows = asyncio.run(run(QUICK_SIZES if args.quick else SIZES, args.reps))
    print(table(rows))
    print(
        json.dumps(
            {
                "bench": "aggregate",
                "targets": {"mean_saving": MEAN_TARGET_SAVING, "floor_ratio": FLOOR_TARGET_RATIO},
                "meets_targets": all(r["meets_targets"] for r in rows),
                "rows": rows,
            }
        )
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
