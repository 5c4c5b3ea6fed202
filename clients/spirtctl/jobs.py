"""spirtctl's job commands: submit, job status|list|delete, watch, model get, cancel."""

from __future__ import annotations

import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.api.spirt.v1 import control_pb2

TERMINAL = {control_pb2.SUCCEEDED, control_pb2.STOPPED_EARLY, control_pb2.FAILED, control_pb2.CANCELLED}
GOOD_END = {control_pb2.SUCCEEDED, control_pb2.STOPPED_EARLY}
MODEL_FORMATS = ("state-dict", "torchscript")
# Without a terminal, watch prints a line each time this share of the rounds is done.
PROGRESS_STEP = 0.1


class JobEnded(Exception):
    """The job ended failed or cancelled (spirtctl exits 1 with the reason)."""


def state_name(state: int) -> str:
    return control_pb2.JobState.Name(state).lower()


def _optional(message: Any, name: str) -> Any:
    return getattr(message, name) if message.HasField(name) else None


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def status_dict(s: control_pb2.JobStatusResponse) -> dict[str, Any]:
    out: dict[str, Any] = {
        "job_id": s.job_id, "name": s.name, "state": state_name(s.state), "round": s.round,
        "total_rounds": s.total_rounds, "digest": s.digest, "error": s.error, "elapsed_s": round(s.elapsed_s, 3),
        "model": s.model, "dataset": s.dataset, "minibatches_retried": s.minibatches_retried,
        "minibatches_dropped": s.minibatches_dropped, "owner": s.owner, "participants": list(s.participants),
        "participant_digests": dict(s.participant_digests),
    }  # fmt: skip
    for name in ("loss", "accuracy", "val_loss", "test_accuracy"):
        out[name] = _optional(s, name)
    return out


def print_status(s: control_pb2.JobStatusResponse) -> None:
    acc = f", accuracy {s.accuracy:.4f}" if s.HasField("accuracy") else ""
    test = f", test accuracy {s.test_accuracy:.4f}" if s.HasField("test_accuracy") else ""
    total = s.total_rounds or "?"
    print(f"job {s.job_id} ({s.model} on {s.dataset}): {state_name(s.state)}, round {s.round}/{total}, "
          f"loss {_number(_optional(s, 'loss'))}{acc}{test}")  # fmt: skip
    if s.owner:
        print(f"  owner {s.owner}")
    if s.participants:
        print(f"  peers {', '.join(s.participants)} (the last round's participants)")
    if s.participant_digests:  # the cluster's view: what each of them holds
        for peer in s.participants:
            print(f"    {peer} digest {s.participant_digests.get(peer, '(not heard from)')[:16]}")
    if s.digest:
        print(f"  model digest {s.digest}")
    if s.error:
        print(f"  error: {s.error}")


async def submit(stub, args) -> int:
    text = Path(args.spec_file).read_text()
    fmt = "json" if args.spec_file.endswith(".json") else "toml" if args.spec_file.endswith(".toml") else ""
    reply = await stub.SubmitJob(control_pb2.SubmitJobRequest(spec=text, format=fmt), timeout=args.timeout)
    print(json.dumps({"job_id": reply.job_id}) if args.json else reply.job_id, flush=True)
    if not args.wait:
        return 0
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


def summary_dict(j: control_pb2.JobSummary) -> dict[str, Any]:
    return {"job_id": j.job_id, "name": j.name, "state": state_name(j.state), "model": j.model,
            "dataset": j.dataset, "round": j.round, "total_rounds": j.total_rounds, "owner": j.owner,
            "submitted_unix": j.submitted_unix, "model_kept": j.model_kept, "error": j.error}  # fmt: skip


async def list_jobs(stub, args) -> int:
    reply = await stub.ListJobs(control_pb2.ListJobsRequest(), timeout=args.timeout)
    if args.json:
        print(json.dumps([summary_dict(j) for j in reply.jobs]))
        return 0
    print(f"{'JOB':<13} {'STATE':<14} {'ROUNDS':>13} {'MODEL':<20} {'OWNER':<16} NAME")
    for j in reply.jobs:
        rounds = f"{j.round}/{j.total_rounds or '?'}"
        model = f"{j.model or '-'} on {j.dataset}" if j.dataset else (j.model or "-")
        print(f"{j.job_id:<13} {state_name(j.state):<14} {rounds:>13} {model:<20} {j.owner or '-':<16} {j.name}")
    return 0


async def delete(stub, args) -> int:
    await stub.DeleteJob(control_pb2.DeleteJobRequest(job_id=args.job_id), timeout=args.timeout)
    print(f"job {args.job_id}: deleted")
    return 0


async def job(stub, args) -> int:
    return await {"status": status, "list": list_jobs, "delete": delete}[args.job_action](stub, args)


def _terminal_bar(total: int):
    from tqdm import tqdm

    return tqdm(total=total, unit="round", file=sys.stderr, dynamic_ncols=True)


async def watch(stub, args) -> int:
    """A progress bar of rounds on a terminal (JSON lines with --json, a few
    plain lines into a pipe or file) until the job ends."""
    bar, next_line = None, 0.0
    async for event in stub.WatchJob(control_pb2.WatchJobRequest(job_id=args.job_id)):
        if args.json:
            print(json.dumps(event_dict(event)), flush=True)
            continue
        ended = event.state in TERMINAL
        if sys.stderr.isatty():
            bar = bar or _terminal_bar(event.total_rounds)
            bar.n = event.round
            bar.set_postfix(_postfix(event), refresh=True)
            if ended:
                bar.close()
        elif ended or event.message or event.round >= next_line:
            extra = f": {event.message}" if event.message and not ended else ""
            print(f"round {event.round}/{event.total_rounds or '?'} loss {_number(_optional(event, 'loss'))}{extra}",
                  flush=True)  # fmt: skip
            next_line = event.round + max(1, math.ceil(event.total_rounds * PROGRESS_STEP))
        if ended:
            print(f"job {args.job_id} {state_name(event.state)}: {event.message}")
    return 0


def _postfix(event: control_pb2.RoundEvent) -> dict[str, Any]:
    post: dict[str, Any] = {"loss": _number(_optional(event, "loss"))}
    if event.HasField("accuracy"):
        post["acc"] = f"{event.accuracy:.3f}"
    if event.retried or event.dropped:
        post["retried"], post["dropped"] = event.retried, event.dropped
    return post


def event_dict(e: control_pb2.RoundEvent) -> dict[str, Any]:
    out = {"round": e.round, "total_rounds": e.total_rounds, "state": state_name(e.state),
           "phase_s": dict(e.phase_s), "minibatches": e.minibatches, "retried": e.retried,
           "dropped": e.dropped, "message": e.message, "participants": list(e.participants),
           "excluded": dict(e.excluded), "sent_bytes": e.sent_bytes, "received_bytes": e.received_bytes,
           "digest": e.digest, "participant_digests": dict(e.participant_digests)}  # fmt: skip
    for name in ("loss", "accuracy", "val_loss"):
        out[name] = _optional(e, name)
    return out


async def model_get(stub, args) -> int:
    """Assembles the streamed parameters and saves them: a state dict
    (torch.save) or a TorchScript module (torch.jit.save) rebuilt from the
    job's spec, which needs no spirtd to load."""
    import torch

    pieces: dict[str, bytearray] = {}
    shapes: dict[str, tuple[int, ...]] = {}
    first = None
    async for chunk in stub.GetModel(control_pb2.GetModelRequest(job_id=args.job_id), timeout=args.timeout):
        first = first or chunk
        buf = pieces.setdefault(chunk.name, bytearray())
        if chunk.offset != len(buf):
            raise ValueError(f"piece of {chunk.name} at {chunk.offset} arrived out of order")
        buf.extend(chunk.data)
        shapes[chunk.name] = tuple(chunk.shape)
    if first is None:
        raise ValueError(f"the peer sent no parameters for job {args.job_id}")
    flat = b"".join(bytes(b) for b in pieces.values())
    if first.digest and hashlib.sha256(flat).hexdigest() != first.digest:
        raise ValueError("the model's bytes do not match the digest the peer sent")
    state = {name: torch.from_numpy(np.frombuffer(bytes(buf), dtype=np.float32).reshape(shapes[name]).copy())
             for name, buf in pieces.items()}  # fmt: skip
    if args.format == "torchscript":
        _save_torchscript(first, state, args.output)
    else:
        torch.save(state, args.output)
    count = sum(math.prod(s) for s in shapes.values())
    print(f"saved {len(state)} tensors ({count} parameters, round {first.round}, digest {first.digest[:16]}...) "
          f"as {args.format} to {args.output}")  # fmt: skip
    return 0


def _save_torchscript(first: control_pb2.ModelChunk, state: dict, output: str) -> None:
    import torch

    from spirtd.ml.models import ModelSpec, build_model

    spec = json.loads(first.spec_json)
    model = build_model(ModelSpec.from_dict(spec["model"]), tuple(first.input_shape), first.num_classes, 0)
    model.load_state_dict(state)
    torch.jit.save(torch.jit.script(model.eval()), output)


async def cancel(stub, args) -> int:
    reply = await stub.CancelJob(control_pb2.CancelJobRequest(job_id=args.job_id), timeout=args.timeout)
    print(f"job {args.job_id}: {state_name(reply.state)}")
    return 0
