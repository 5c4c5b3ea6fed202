"""Peer-to-peer training against one process and gloo DDP: the MLP on digits.

Same model, data, seed, global batch and epochs in all three:
  (a) spirtd: 3 peers (`spirtd run`, mutual TLS, loopback), each with its
      own store and 2 warm workers, minibatches_per_round = 4 of 32 samples
      per peer: a global batch of 384 per optimizer step, the step in the
      stores;
  (b) one process: torch, batches of 384 (the same minibatches, in order);
  (c) DDP: 3 gloo processes, 128 samples each per step (4 minibatches),
      gradients all-reduced.
Time per epoch of (a) is measured between the job's first and last round
events (start-up of daemons and workers left out, as (b) and (c) leave out
their process start), and so for (b) and (c) from their first step.
Target: (a) at most 1.5x (c) per epoch at equal test accuracy (+-1 point).

Prints a table, the median of each phase of node1's rounds, then one JSON line.

    python bench/train.py [--epochs 16]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
PEERS = 3
PER_PEER = 4
BATCH = 32
LR = 0.1
MOMENTUM = 0.9
SEED = 7
TARGET_RATIO = 1.5
SPEC = """
model = "mlp"
dataset = "digits"
batch_size = {batch}
minibatches_per_round = {per_peer}
epochs = {epochs}
seed = {seed}
eval_every = 1000000
[optimizer]
name = "sgd"
lr = {lr}
momentum = {momentum}
[workers]
mode = "warm"
concurrency = 2
"""


def model_and_data():
    from spirtd.ml.datasets import DatasetSpec, load_dataset
    from spirtd.ml.models import ModelSpec, build_model

    data = load_dataset(DatasetSpec.from_dict({"name": "digits"}), SEED)
    model = build_model(ModelSpec.from_dict({"name": "mlp"}), data.input_shape, data.num_classes, SEED)
    return model, data


def accuracy(model, data) -> float:
    import torch

    with torch.no_grad():
        predicted = model(torch.from_numpy(np.array(data.test_x))).argmax(dim=1).numpy()
    return float((predicted == data.test_y).mean())


def steps(data, epochs: float, ranks: int, rank: int):
    """The (epoch, index) minibatches of each optimizer step for one rank,
    as spirtd's rounds use them (minibatch_slots)."""
    from spirtd.exchange.formulas import minibatch_slots

    per_epoch = data.batches_per_epoch(BATCH)
    total = int(np.ceil(epochs * per_epoch / (PER_PEER * PEERS))) * PER_PEER * PEERS
    for position in range(0, total, PER_PEER * PEERS):
        slots = [s for k in range(PEERS // ranks) for s in
                 minibatch_slots(position, per_epoch, rank * (PEERS // ranks) + k, PER_PEER)]  # fmt: skip
        yield slots


def train_local(epochs: float, ranks: int = 1, rank: int = 0) -> dict:
    import torch
    import torch.distributed as dist

    torch.manual_seed(SEED)
    model, data = model_and_data()
    if ranks > 1:
        model = torch.nn.parallel.DistributedDataParallel(model)
    opt = torch.optim.SGD(model.parameters(), lr=LR, momentum=MOMENTUM)
    started = time.perf_counter()
    for slots in steps(data, epochs, ranks, rank):
        xs, ys = zip(*(data.minibatch(BATCH, e, i) for e, i in slots))
        x, y = torch.from_numpy(np.concatenate(xs)), torch.from_numpy(np.concatenate(ys))
        opt.zero_grad()
        torch.nn.functional.cross_entropy(model(x), y).backward()
        opt.step()
    seconds = time.perf_counter() - started
    inner = model.module if ranks > 1 else model
    if ranks > 1:
        dist.barrier()
    return {"s_per_epoch": seconds / epochs, "test_accuracy": accuracy(inner, data)}


def ddp_rank(rank: int, port: int, epochs: float) -> None:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=rank, world_size=PEERS)
    result = train_local(epochs, PEERS, rank)
    dist.destroy_process_group()
    print(json.dumps(result))


def run_ddp(epochs: float) -> dict:
    from bench.exchange import free_ports

    (port,) = free_ports(1)
    procs = [subprocess.Popen([sys.executable, __file__, "--ddp-rank", str(r), "--port", str(port), "--epochs",
                               str(epochs)], stdout=subprocess.PIPE, text=True) for r in range(PEERS)]  # fmt: skip
    results = [json.loads(p.communicate(timeout=1800)[0].strip().splitlines()[-1]) for p in procs]
    return {"s_per_epoch": max(r["s_per_epoch"] for r in results), "test_accuracy": results[0]["test_accuracy"]}


async def run_spirtd(epochs: float) -> dict:
    from spirtd.api.spirt.v1 import control_pb2
    from spirtd.security import ca
    from spirtd.security.identity import Role
    from tests.daemon.peers import Control, Peers, eventually

    with tempfile.TemporaryDirectory(prefix="spt-bt-", dir="/tmp") as tmp:
        root = Path(tmp)
        ca.init_ca(root / "certs")
        for i in range(1, PEERS + 1):
            ca.issue(root / "certs", f"node{i}", ips=["127.0.0.1"])
        ca.issue(root / "certs", "client", role=Role.CLIENT)
        peers = Peers(root, root / "certs")
        try:
            first = peers.start("node1")
            others = [peers.start(f"node{i}", seeds=[first.address]) for i in range(2, PEERS + 1)]
            control = Control(first.address, root / "certs")

            async def all_alive():
                return sum(s == "alive" for s in (await control.members()).values()) == PEERS

            await eventually(all_alive, 60, "the peers seeing each other")
            text = SPEC.format(batch=BATCH, per_peer=PER_PEER, epochs=epochs, seed=SEED, lr=LR, momentum=MOMENTUM)
            reply = await control.stub.SubmitJob(control_pb2.SubmitJobRequest(spec=text), timeout=60)
            times, phases = [], {}
            async for event in control.stub.WatchJob(control_pb2.WatchJobRequest(job_id=reply.job_id)):
                if event.participants:
                    times.append(time.perf_counter())
                    for phase, seconds in event.phase_s.items():
                        phases.setdefault(phase, []).append(seconds)
            status = await control.stub.JobStatus(control_pb2.JobStatusRequest(job_id=reply.job_id), timeout=30)
            await control.aclose()
            rounds = len(times)
            # The first round's event comes after it: the rounds between the first and the last event.
            per_round = (times[-1] - times[0]) / max(1, rounds - 1)
            return {"s_per_epoch": per_round * rounds / epochs, "test_accuracy": status.test_accuracy,
                    "rounds": rounds, "state": control_pb2.JobState.Name(status.state),
                    "phase_ms": {p: round(1000 * float(np.median(v)), 1) for p, v in phases.items()}}  # fmt: skip
        finally:
            peers.close()
            del others


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--epochs", type=float, default=16)
    parser.add_argument("--ddp-rank", type=int, default=None)
    parser.add_argument("--port", type=int, default=0)
    args = parser.parse_args()
    if args.ddp_rank is not None:
        ddp_rank(args.ddp_rank, args.port, args.epochs)
        return
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    local = train_local(args.epochs)
    ddp = run_ddp(args.epochs)
    spirt = asyncio.run(run_spirtd(args.epochs))
    rows = [("one process", local), ("gloo DDP, 3 processes", ddp), ("spirtd, 3 peers", spirt)]
    print(f"{'':<24} {'s/epoch':>8} {'x DDP':>6} {'test acc':>9}")
    for name, r in rows:
        print(f"{name:<24} {r['s_per_epoch']:>8.3f} {r['s_per_epoch'] / ddp['s_per_epoch']:>6.2f} "
              f"{r['test_accuracy']:>9.4f}")  # fmt: skip
    ratio = spirt["s_per_epoch"] / ddp["s_per_epoch"]
    print("spirtd's round at node1, median ms per phase: " +
          ", ".join(f"{p} {ms}" for p, ms in spirt["phase_ms"].items()))  # fmt: skip
    print(json.dumps({"bench": "train", "epochs": args.epochs, "one_process": local, "ddp": ddp, "spirtd": spirt,
                      "ratio_vs_ddp": ratio, "target_ratio": TARGET_RATIO,
                      "accuracy_gap_points": 100 * (spirt["test_accuracy"] - ddp["test_accuracy"]),
                      "target_met": ratio <= TARGET_RATIO and abs(spirt["test_accuracy"] - ddp["test_accuracy"]) <= 0.01}))  # fmt: skip


if __name__ == "__main__":
    main()
