"""The peer-to-peer exchange against torch.distributed gloo all_reduce.

For n peers and M float32 parameters, one run measures, per round:
  (a) spirtd: n separate processes, each with its own store (redis-server
      with spirt's module) and gRPC server with mutual TLS on loopback; the
      round's agreement, reduce-scatter of the local aggregates into the
      owners' stores, SPIRT.AGGREGATE mean per shard, all-gather into every
      store (ExchangeDriver.agree + exchange + commit), fp32 and fp16 on
      the wire; bytes each peer sent against 2 (n-1)/n M 4;
  (b) gloo: n processes, all_reduce (sum) of the same M float32, no
      encryption.
Target: (a, fp32) at most 2x (b) for n = 4, M = 11.7M.

Prints a table, then one JSON line with every figure. Times are medians
over rounds after a warm-up round; compare the ratios (shared machines).

    python bench/exchange.py [--quick | --sizes 4x11700000]   (BENCH_PROFILE=FILE: peer 0's cProfile)
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # this checkout's spirtd, not an installed one
from exchange_floor import MemoryStore, wire_peer

SIZES = [(2, 2_540_000), (4, 2_540_000), (2, 11_700_000), (4, 11_700_000)]
QUICK_SIZES = [(2, 2_540_000)]
MODELS = {2_540_000: "MobileNetV3-small", 11_700_000: "ResNet-18"}
ROUNDS = 5
TARGET_RATIO = 2.0
MAX_MESSAGE_BYTES = 4 << 20
PHASES = ("agree", "exchange", "commit")  # of a round, as the driver's calls split it
# The same round with less of spirtd (exchange_floor.py): the same bytes over
# raw sockets (TCP; mutual TLS; TLS and SHA-256 at both ends), and spirtd
# without Redis (its driver, streams and gRPC with the store in memory).
FLOORS = {"tcp": ("wire", ()), "tls": ("wire", ("--tls",)), "tls+sha256": ("wire", ("--tls", "--sha256")),
          "grpc_no_store": ("spirt", ("--store", "memory"))}


def free_ports(n: int) -> list[int]:
    socks = [socket.socket() for _ in range(n)]
    for s in socks:
        s.bind(("127.0.0.1", 0))
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


# ---- one spirtd peer (a subprocess) ----

def cpu_s(pid: int | None) -> float:
    """CPU seconds (user and system) another process of this machine used so far; 0 without one."""
    if pid is None:
        return 0.0
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def spirt_peer(index: int, n: int, m: int, rounds: int, root: Path, ports: list[int], wire: str,
                     certs_dir: Path, store_kind: str = "redis", chunk_bytes: int | None = None) -> dict:
    from spirtd.clock import SystemClock
    from spirtd.daemon.app import stream_chunk_bytes
    from spirtd.daemon.exchange_grpc import GradientExchangeService, GrpcExchangeTransport
    from spirtd.api.spirt.v1 import gradients_pb2_grpc
    from spirtd.errors import AttemptFailed
    from spirtd.exchange.attempt import LocalAggregate
    from spirtd.exchange.config import AgreementConfig, ExchangeConfig, RoundSettings
    from spirtd.exchange.driver import ExchangeDriver
    from spirtd.rpc.counters import Counters
    from spirtd.rpc.guard import Guard
    from spirtd.rpc.server import ChannelPool, RpcServer, peer_channel_options
    from spirtd.rpc.tls import channel_credentials, server_credentials
    from spirtd.security.certsdir import CertsDir
    from spirtd.security.identity import Role
    from spirtd.store import connect
    from spirtd.store.embedded import EmbeddedStore
    from spirtd.store.server import StoreServerConfig

    me = f"peer{index}"
    names = [f"peer{i}" for i in range(n)]
    addresses = {name: f"127.0.0.1:{port}" for name, port in zip(names, ports)}
    certs = CertsDir(certs_dir)
    own = certs.credentials(me, role=Role.PEER)
    guard = Guard(certs.ca_cert, None, Counters(), max_message_bytes=MAX_MESSAGE_BYTES)
    clock = SystemClock()
    settings = RoundSettings("mean", {}, ExchangeConfig(
        agreement=AgreementConfig(propose_timeout_s=30, report_timeout_s=60), wire_dtype=wire,
        chunk_bytes=chunk_bytes or ExchangeConfig().chunk_bytes,
        deadline_floor_s=60, deadline_ceiling_s=120, gather_timeout_s=120))

    class Everyone:
        def alive(self):
            return set(names)

    async with contextlib.AsyncExitStack() as stack:
        if store_kind == "memory":  # the floor without Redis: spirtd's driver, streams and gRPC alone
            store, store_pid = MemoryStore(), None
        else:
            embedded = await stack.enter_async_context(
                EmbeddedStore(StoreServerConfig(data_dir=root / me, persistence="none")))
            store, store_pid = await connect(socket_path=embedded.socket_path, password=embedded.password), embedded.pid
        channels = ChannelPool(channel_credentials(own, certs.ca_pem), peer_channel_options(MAX_MESSAGE_BYTES))
        transport = GrpcExchangeTransport(me, channels, addresses.get)
        driver = ExchangeDriver(me, transport, store, clock, Everyone(),
                                max_chunk_bytes=stream_chunk_bytes(MAX_MESSAGE_BYTES))  # fmt: skip

        def register(server):
            gradients_pb2_grpc.add_GradientExchangeServicer_to_server(
                GradientExchangeService(lambda: driver, lambda: None, guard), server)

        server = RpcServer(addresses[me], credentials=server_credentials(own, certs.ca_pem), guard=guard,
                           register=register, max_message_bytes=MAX_MESSAGE_BYTES, grace_s=1.0)
        async with server, driver:
            local = np.random.default_rng(index).standard_normal(m).astype(np.float32)
            await store.set("local", local)
            times, sent, phases = [], [], {"agree": [], "exchange": [], "commit": []}
            for r in range(rounds + 1):
                started = time.perf_counter()
                if r == 1:  # round 0 warms up connections and the store
                    cpu = [time.process_time(), cpu_s(store_pid)]
                while True:
                    at = [time.perf_counter()]
                    key = await driver.agree("bench", r, f"v{r}", names, m, f"job:bench:round:{r}:x", settings)
                    at.append(time.perf_counter())
                    try:
                        glob = await driver.exchange("bench", key, LocalAggregate("local", 1.0, 0.0))
                        at.append(time.perf_counter())
                        await driver.commit("bench", key, f"v{r + 1}")  # the digest round r + 1 starts from
                        at.append(time.perf_counter())
                        break
                    except AttemptFailed:
                        continue
                if r:  # round 0 warms up connections and the store
                    times.append(time.perf_counter() - started)
                    sent.append(glob.sent_bytes)
                    for name, begin, end in zip(phases, at, at[1:]):
                        phases[name].append(end - begin)
                await store.delete_matching(f"job:bench:round:{r}:*")
            cpu = [(time.process_time() - cpu[0]) / rounds, (cpu_s(store_pid) - cpu[1]) / rounds]
            await asyncio.sleep(1.0)  # let the others finish their last round
        await channels.aclose()
        await store.aclose()
    return {"median_s": statistics.median(times), "sent_bytes": statistics.median(sent), "cpu_s": cpu[0],
            "store_cpu_s": cpu[1],
            **{f"{name}_s": statistics.median(t) for name, t in phases.items()}}


# ---- one gloo process ----

def gloo_peer(index: int, n: int, m: int, rounds: int, port: int) -> dict:
    import torch
    import torch.distributed as dist

    torch.set_num_threads(1)
    dist.init_process_group("gloo", init_method=f"tcp://127.0.0.1:{port}", rank=index, world_size=n)
    x = torch.from_numpy(np.random.default_rng(index).standard_normal(m).astype(np.float32))
    times = []
    for r in range(rounds + 1):
        dist.barrier()
        if r == 1:
            cpu = time.process_time()
        started = time.perf_counter()
        dist.all_reduce(x)
        if r:
            times.append(time.perf_counter() - started)
    cpu = (time.process_time() - cpu) / rounds  # the barriers' included
    dist.destroy_process_group()
    return {"median_s": statistics.median(times), "cpu_s": cpu, "store_cpu_s": 0.0}


# ---- the parent ----

def run_peers(kind: str, n: int, m: int, rounds: int, root: Path, certs: Path, wire: str = "FLOAT",
              *extra: str) -> list[dict]:  # fmt: skip
    ports = free_ports(1 if kind == "gloo" else n)
    procs = []
    for i in range(n):
        argv = [sys.executable, __file__, "--peer", kind, "--index", str(i), "--n", str(n), "--m", str(m),
                "--rounds", str(rounds), "--root", str(root), "--ports", ",".join(map(str, ports)), "--wire", wire,
                "--certs", str(certs), *extra]
        procs.append(subprocess.Popen(argv, stdout=subprocess.PIPE, text=True))
    results = []
    for proc in procs:
        out, _ = proc.communicate(timeout=900)
        if proc.returncode != 0:
            raise SystemExit(f"a {kind} peer failed (exit {proc.returncode})")
        results.append(json.loads(out.strip().splitlines()[-1]))
    return results


def cpu_per_round(peers: list[dict]) -> float:
    """CPU seconds of one round, summed over the peers and their stores."""
    return sum(r["cpu_s"] + r["store_cpu_s"] for r in peers)


def make_certs(root: Path, n: int) -> None:
    from spirtd.security import ca

    ca.init_ca(root / "certs")
    for i in range(n):
        ca.issue(root / "certs", f"peer{i}", ips=["127.0.0.1"])


def main() -> None:
    from spirtd.exchange.config import ExchangeConfig

    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--no-floors", action="store_true", help="skip the floors (raw sockets, no store)")
    parser.add_argument("--sizes", default="", help="NxM[,NxM...]: only these (n peers, M parameters), e.g. 4x11700000")
    parser.add_argument("--peer", choices=["spirt", "gloo", "wire"])
    parser.add_argument("--index", type=int, default=0)
    parser.add_argument("--n", type=int, default=2)
    parser.add_argument("--m", type=int, default=0)
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    parser.add_argument("--root", type=Path)
    parser.add_argument("--ports", default="")
    parser.add_argument("--wire", default="FLOAT")
    parser.add_argument("--certs", type=Path)
    parser.add_argument("--store", choices=["redis", "memory"], default="redis")
    parser.add_argument("--tls", action="store_true")
    parser.add_argument("--sha256", action="store_true")
    parser.add_argument("--chunk-bytes", type=int, default=ExchangeConfig().chunk_bytes,
                        help="a stream's chunks (the spirt peers' are at most their messages' limit)")
    args = parser.parse_args()
    ports = [int(p) for p in args.ports.split(",") if p]
    if args.peer == "spirt":
        profile = os.environ.get("BENCH_PROFILE")  # peer 0's cProfile: where its round's time goes
        if profile and args.index == 0:
            import cProfile

            profiler = cProfile.Profile()
            result = profiler.runcall(asyncio.run, spirt_peer(args.index, args.n, args.m, args.rounds, args.root,
                                                              ports, args.wire, args.certs, args.store,
                                                              args.chunk_bytes))  # fmt: skip
            profiler.dump_stats(f"{profile}.{args.n}.{args.m}.{args.wire}")
            print(json.dumps(result))
            return
        result = asyncio.run(spirt_peer(args.index, args.n, args.m, args.rounds, args.root, ports, args.wire, args.certs,
                                        args.store, args.chunk_bytes))  # fmt: skip
        print(json.dumps(result))
        return
    if args.peer == "wire":
        print(json.dumps(asyncio.run(wire_peer(args.index, args.n, args.m, args.rounds, ports, args.certs, args.tls,
                                               args.sha256, args.chunk_bytes))))  # fmt: skip
        return
    if args.peer == "gloo":
        print(json.dumps(gloo_peer(args.index, args.n, args.m, args.rounds, ports[0])))
        return

    from spirtd.exchange.formulas import exchange_bytes

    rows = []
    sizes = [tuple(int(v) for v in size.split("x")) for size in args.sizes.split(",") if size]
    for n, m in sizes or (QUICK_SIZES if args.quick else SIZES):
        with tempfile.TemporaryDirectory(prefix="spt-bx-", dir="/tmp") as tmp:
            root = Path(tmp)
            make_certs(root, n)
            gloo_peers = run_peers("gloo", n, m, args.rounds, root, root / "certs")
            gloo = max(r["median_s"] for r in gloo_peers)
            fp32 = run_peers("spirt", n, m, args.rounds, root / "fp32", root / "certs", "FLOAT")
            fp16 = run_peers("spirt", n, m, args.rounds, root / "fp16", root / "certs", "HALF")
            floors = {name: run_peers(kind, n, m, args.rounds, root / name, root / "certs", "FLOAT", *flags)
                      for name, (kind, flags) in FLOORS.items()} if not args.no_floors else {}  # fmt: skip
        spirt32, spirt16 = max(r["median_s"] for r in fp32), max(r["median_s"] for r in fp16)
        ideal = exchange_bytes(n, m)
        rows.append({"n": n, "m": m, "model": MODELS.get(m, ""), "gloo_s": gloo, "spirt_fp32_s": spirt32,
                     "spirt_fp16_s": spirt16, "ratio_fp32": spirt32 / gloo, "ratio_fp16": spirt16 / gloo,
                     "sent_bytes": max(r["sent_bytes"] for r in fp32), "ideal_bytes": ideal,
                     "sent_bytes_fp16": max(r["sent_bytes"] for r in fp16),
                     # where the slowest peer's fp32 round went
                     **{f"{p}_s": max(fp32, key=lambda r: r["median_s"])[f"{p}_s"] for p in PHASES},
                     "gloo_cpu_s": cpu_per_round(gloo_peers), "spirt_fp32_cpu_s": cpu_per_round(fp32),
                     **{f"floor_{name}_s": max(r["median_s"] for r in peers) for name, peers in floors.items()},
                     **{f"floor_{name}_cpu_s": cpu_per_round(peers) for name, peers in floors.items()}})  # fmt: skip
    print(f"{'n':>2} {'M':>11} {'model':<18} {'gloo s':>8} {'spirt s':>8} {'x gloo':>7} {'fp16 s':>8} "
          f"{'x gloo':>7} {'sent/ideal':>10} {'agree s':>8} {'exch s':>8} {'commit s':>8}")  # fmt: skip
    for row in rows:
        print(f"{row['n']:>2} {row['m']:>11,} {row['model']:<18} {row['gloo_s']:>8.3f} {row['spirt_fp32_s']:>8.3f} "
              f"{row['ratio_fp32']:>7.2f} {row['spirt_fp16_s']:>8.3f} {row['ratio_fp16']:>7.2f} "
              f"{row['sent_bytes'] / row['ideal_bytes']:>10.3f} "
              + " ".join(f"{row[f'{p}_s']:>8.3f}" for p in PHASES))  # fmt: skip
    if not args.no_floors:
        print("\nthe same round with less of spirtd: s, x gloo, and CPU s a round (every process, stores included)")
        names = ["gloo", *FLOORS, "spirt_fp32"]
        print(f"{'n':>2} {'M':>11} " + " ".join(f"{name:>23}" for name in names))
        for row in rows:
            of = {**row, "floor_gloo_s": row["gloo_s"], "floor_gloo_cpu_s": row["gloo_cpu_s"],
                  "floor_spirt_fp32_s": row["spirt_fp32_s"], "floor_spirt_fp32_cpu_s": row["spirt_fp32_cpu_s"]}
            print(f"{row['n']:>2} {row['m']:>11,} " + " ".join(
                f"{of[f'floor_{name}_s']:>7.3f} {of[f'floor_{name}_s'] / row['gloo_s']:>6.2f}x "
                f"{of[f'floor_{name}_cpu_s']:>6.3f}c" for name in names))  # fmt: skip
    target = next((r for r in rows if r["n"] == 4 and r["m"] == 11_700_000), None)
    print(json.dumps({"bench": "exchange", "rows": rows, "target_ratio": TARGET_RATIO,
                      "target_met": target["ratio_fp32"] <= TARGET_RATIO if target else None}))  # fmt: skip


if __name__ == "__main__":
    main()
