"""spirtctl's job commands: submit, job status, watch, model get, cancel."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.api.spirt.v1 import control_pb2

TERMINAL = {control_pb2.SUCCEEDED, control_pb2.STOPPED_EARLY, control_pb2.FAILED, control_pb2.CANCELLED}
GOOD_END = {control_pb2.SUCCEEDED, control_pb2.STOPPED_EARLY}


class JobEnded(Exception):
    """The job ended failed or cancelled (spirtctl exits 1 with the reason)."""


def state_name(state: int) -> str:
    return control_pb2.JobState.Name(state).lower()


def status_dict(s: control_pb2.JobStatusResponse) -> dict[str, Any]:
    out: dict[str, Any] = {
        "job_id": s.job_id, "state": state_name(s.state), "round": s.round, "total_rounds": s.total_rounds,
        "loss": s.loss, "digest": s.digest, "error": s.error, "elapsed_s": round(s.elapsed_s, 3),
        "model": s.model, "dataset": s.dataset, "minibatches_retried": s.minibatches_retried,
        "minibatches_dropped": s.minibatches_dropped,
    }  # fmt: skip
    for name in ("accuracy", "val_loss", "test_accuracy"):
        out[name] = getattr(s, name) if s.HasField(name) else None
    return out


def print_status(s: control_pb2.JobStatusResponse) -> None:
    acc = f", accuracy {s.accuracy:.4f}" if s.HasField("accuracy") else ""
    test = f", test accuracy {s.test_accuracy:.4f}" if s.HasField("test_accuracy") else ""
    print(f"job {s.job_id} ({s.model} on {s.dataset}): {state_name(s.state)}, round {s.round}/{s.total_rounds}, "
          f"loss {s.loss:.4f}{acc}{test}")  # fmt: skip
    if s.digest:
        print(f"  model digest {s.digest}")
    if s.error:
        print(f"  error: {s.error}")


async def submit(stub, args) -> int:
    text = Path(args.spec_file).read_text()
    fmt = "json" if args.spec_file.endswith(".json") else "toml" if args.spec_file.endswith(".toml") else ""
    reply = await stub.SubmitJob(control_pb2.SubmitJobRequest(spec=text, format=fmt), timeout=args.timeout)
    if not args.wait:
        print(json.dumps({"job_id": reply.job_id}) if args.json else reply.job_id)
        return 0
    if not args.json:
        print(reply.job_id, flush=True)
    async for _ in stub.WatchJob(control_pb2.WatchJobRequest(job_id=reply.job_id)):
        pass
    return await finish(stub, reply.job_id, args)


async def finish(stub, job_id: str, args) -> int:
    status = await stub.JobStatus(control_pb2.JobStatusRequest(job_id=job_id), timeout=args.timeout)
    print(json.dumps(status_dict(status))) if args.json else print_status(status)
    if status.state not in GOOD_END:
        raise JobEnded(f"job {job_id} {state_name(status.state)}: {status.error or 'no reason given'}")
    return 0


async def status(stub, args) -> int:
    reply = await stub.JobStatus(control_pb2.JobStatusRequest(job_id=args.job_id), timeout=args.timeout)
    print(json.dumps(status_dict(reply))) if args.json else print_status(reply)
    return 0


async def watch(stub, args) -> int:
    """A progress bar of rounds (JSON lines with --json) until the job ends."""
    bar = None
    async for event in stub.WatchJob(control_pb2.WatchJobRequest(job_id=args.job_id)):
        if args.json:
            print(json.dumps(event_dict(event)), flush=True)
            continue
        if bar is None:
            from tqdm import tqdm

            bar = tqdm(total=event.total_rounds, unit="round", file=sys.stderr, dynamic_ncols=True)
        bar.n = event.round
        post = {"loss": f"{event.loss:.4f}"}
        if event.HasField("accuracy"):
            post["acc"] = f"{event.accuracy:.3f}"
        if event.retried or event.dropped:
            post["retried"], post["dropped"] = event.retried, event.dropped
        bar.set_postfix(post, refresh=True)
        if event.state in TERMINAL:
            bar.close()
            print(f"job {args.job_id} {state_name(event.state)}: {event.message}")
    return 0


def event_dict(e: control_pb2.RoundEvent) -> dict[str, Any]:
    out = {"round": e.round, "total_rounds": e.total_rounds, "loss": e.loss, "state": state_name(e.state),
           "phase_s": dict(e.phase_s), "minibatches": e.minibatches, "retried": e.retried,
           "dropped": e.dropped, "message": e.message}  # fmt: skip
    for name in ("accuracy", "val_loss"):
        out[name] = getattr(e, name) if e.HasField(name) else None
    return out


async def model_get(stub, args) -> int:
    """Assembles the streamed parameters into a state dict and saves it with torch."""
    import hashlib

    import torch

    pieces: dict[str, bytearray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    digest = ""
    async for chunk in stub.GetModel(control_pb2.GetModelRequest(job_id=args.job_id), timeout=args.timeout):
        digest = digest or chunk.digest
        buf = pieces.setdefault(chunk.name, bytearray())
        if chunk.offset != len(buf):
            raise ValueError(f"piece of {chunk.name} at {chunk.offset} arrived out of order")
        buf.extend(chunk.data)
        shapes[chunk.name] = tuple(chunk.shape)
    state = {name: torch.from_numpy(np.frombuffer(bytes(buf), dtype=np.float32).reshape(shapes[name]).copy())
             for name, buf in pieces.items()}  # fmt: skip
    flat = b"".join(bytes(b) for b in pieces.values())
    if digest and hashlib.sha256(flat).hexdigest() != digest:
        raise ValueError("the model's bytes do not match the digest the peer sent")
    torch.save(state, args.output)
    count = sum(math.prod(s) for s in shapes.values())
    print(f"saved {len(state)} tensors ({count} parameters, digest {digest[:16]}...) to {args.output}")
    return 0


async def cancel(stub, args) -> int:
    reply = await stub.CancelJob(control_pb2.CancelJobRequest(job_id=args.job_id), timeout=args.timeout)
    print(f"job {args.job_id}: {state_name(reply.state)}")
    return 0
