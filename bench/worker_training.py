"""Minibatches per second of real training rounds on one peer, against plain
torch in one process (bench/worker.py prints it).

spirtd: JobRunner.run_round, the real thing: the real gradient handler in
`concurrency` warm workers (one torch thread each), the round's gradients
averaged in the store, the SGD step in the store. Plain torch: one process,
the same model, data and batch size, torch's default threads, an SGD step
per minibatch.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.clock import SystemClock
from spirtd.store.connect import connect
from spirtd.store.embedded import EmbeddedStore
from spirtd.store.server import StoreServerConfig
from spirtd.daemon.training import training as daemon_training
from spirtd.daemon.training import warm_pools
from spirtd.ml import describe
from spirtd.store.blocking import store_env
from spirtd.jobs.runner import JobRunner
from spirtd.jobs.spec import from_dict

SPEC = {
    "model": "lenet",
    "dataset": {"name": "synthetic", "shape": [1, 28, 28], "n_samples": 4096, "n_classes": 10},
    "batch_size": 64,
    "minibatches_per_round": 8,
    "rounds": 1000,
    "seed": 1,
    "eval_every": 1000,
    "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
}
# (store persistence, fsync, warm workers): the store's durability costs,
# measured beside the in-memory store at the same concurrency.
RUNS = (("none", "everysec", 1), ("none", "everysec", 2), ("none", "everysec", 4),
        ("aof", "everysec", 2), ("aof", "always", 2))  # fmt: skip
ROUNDS, QUICK_ROUNDS = 6, 2


def plain_torch(spec, minibatches: int) -> float:
    """Minibatches per second of plain single-process torch training."""
    import torch

    data = describe.dataset_of(spec.work())
    model = describe.model_of(spec.work(), data)
    opt = torch.optim.SGD(model.parameters(), lr=spec.optimizer.lr, momentum=spec.optimizer.momentum)
    def step(k: int) -> None:
        x, y = data.minibatch(spec.batch_size, 0, k % data.batches_per_epoch(spec.batch_size))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(torch.from_numpy(np.array(x))), torch.from_numpy(np.array(y))).backward()
        opt.step()
    step(0)  # warm-up
    begin = time.perf_counter()
    for k in range(minibatches):
        step(k)
    return minibatches / (time.perf_counter() - begin)


async def spirtd_rounds(spec, store, socket, password_file, concurrency: int, rounds: int, name: str) -> float:
    clock = SystemClock()
    training = daemon_training(warm_pools(store_env(socket, password_file), clock))
    spec = from_dict({**spec.to_dict(), "workers": {"mode": "warm", "concurrency": concurrency}})
    shape = describe.describe(spec.work())

    async def initial():
        return describe.initial_parameters(spec.work())

    async with training.invoker(spec) as invoke:
        runner = JobRunner(name, spec, store, invoke, clock, shape, initial, lambda r: None)
        await runner.load_or_start()
        await runner.run_round(0)  # warm-up: every worker loads the data once
        begin = time.perf_counter()
        for r in range(1, 1 + rounds):
            await runner.run_round(r)
        return rounds * spec.minibatches_per_round / (time.perf_counter() - begin)


async def measure_training(quick: bool = False) -> list[dict[str, Any]]:
    spec = from_dict(SPEC)
    rounds = QUICK_ROUNDS if quick else ROUNDS
    rows = []
    baseline = plain_torch(spec, rounds * spec.minibatches_per_round)
    for persistence, fsync, c in RUNS:
        with tempfile.TemporaryDirectory(prefix="spw-", dir="/tmp") as tmp:
            cfg = StoreServerConfig(data_dir=Path(tmp) / "store", persistence=persistence, fsync=fsync)
            async with EmbeddedStore(cfg) as embedded:
                store = await connect(socket_path=embedded.socket_path, password=embedded.password)
                try:
                    rate = await spirtd_rounds(spec, store, embedded.socket_path, cfg.password_file, c, rounds,
                                               f"bench{c}{persistence}{fsync}")  # fmt: skip
                finally:
                    await store.aclose()
        store_words = "in memory" if persistence == "none" else f"{persistence}, fsync {fsync}"
        rows.append({"workers": c, "store": store_words, "minibatches_per_s": rate, "plain_torch_per_s": baseline,
                     "ratio": rate / baseline})  # fmt: skip
    return rows


def training_table(rows: list[dict[str, Any]]) -> str:
    head = ("| warm workers | store | spirtd minibatches/s | plain torch minibatches/s | ratio |\n"
            "|---|---|---|---|---|\n")  # fmt: skip
    return head + "\n".join(
        f"| {r['workers']} | {r['store']} | {r['minibatches_per_s']:.1f} | {r['plain_torch_per_s']:.1f} | "
        f"{r['ratio']:.2f} |" for r in rows
    )
