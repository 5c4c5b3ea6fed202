"""spirtctl's job commands: submit, job status|list|delete, watch, model get,
cancel, plot (through spirt_client's AsyncClient)."""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path

from spirt_client import AsyncClient, JobStatus, RoundEvent
from spirt_client.progress import RoundBar

MODEL_FORMATS = ("state-dict", "torchscript")
# Without a terminal, watch prints a line each time this share of the rounds is done.
PROGRESS_STEP = 0.1


class JobEnded(Exception):
    """The job ended failed or cancelled (spirtctl exits 1 with the reason)."""


def _number(value: float | None, digits: int = 4) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def print_status(s: JobStatus) -> None:
    acc = f", accuracy {s.accuracy:.4f}" if s.accuracy is not None else ""
    test = f", test accuracy {s.test_accuracy:.4f}" if s.test_accuracy is not None else ""
    total = s.total_rounds or "?"
    print(f"job {s.job_id} ({s.model} on {s.dataset}): {s.state}, round {s.round}/{total}, "
          f"loss {_number(s.loss)}{acc}{test}")  # fmt: skip
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


def _show(status: JobStatus, as_json: bool) -> None:
    print(json.dumps(status.to_dict())) if as_json else print_status(status)


async def submit(client: AsyncClient, args) -> int:
    job_id = await client.submit(Path(args.spec_file))
    print(json.dumps({"job_id": job_id}) if args.json else job_id, flush=True)
    if not args.wait:
        return 0
    status = await client.wait(job_id)
    _show(status, args.json)
    if not status.state.succeeded:
        raise JobEnded(f"job {job_id} {status.state}: {status.error or 'no reason given'}")
    return 0


async def status(client: AsyncClient, args) -> int:
    _show(await client.job_status(args.job_id), args.json)
    return 0


async def list_jobs(client: AsyncClient, args) -> int:
    jobs = await client.jobs()
    if args.json:
        print(json.dumps([j.to_dict() for j in jobs]))
        return 0
    print(f"{'JOB':<13} {'STATE':<14} {'ROUNDS':>13} {'MODEL':<20} {'OWNER':<16} NAME")
    for j in jobs:
        rounds = f"{j.round}/{j.total_rounds or '?'}"
        model = f"{j.model or '-'} on {j.dataset}" if j.dataset else (j.model or "-")
        print(f"{j.job_id:<13} {j.state:<14} {rounds:>13} {model:<20} {j.owner or '-':<16} {j.name}")
    return 0


async def delete(client: AsyncClient, args) -> int:
    await client.delete(args.job_id)
    print(json.dumps({"job_id": args.job_id, "deleted": True}) if args.json else f"job {args.job_id}: deleted")
    return 0


async def job(client: AsyncClient, args) -> int:
    return await {"status": status, "list": list_jobs, "delete": delete}[args.job_action](client, args)


async def watch(client: AsyncClient, args) -> int:
    """A progress bar of rounds on a terminal (round, loss, accuracy, peers;
    JSON lines with --json; a few plain lines into a pipe or file) until the
    job ends."""
    bar = RoundBar(file=sys.stderr) if sys.stderr.isatty() and not args.json else None
    next_line = 0.0
    async for event in client.events(args.job_id):
        ended = event.state.ended
        if args.json:
            print(json.dumps(event.to_dict()), flush=True)
            continue
        if bar is not None:
            bar.update(event)
        elif ended or event.message or event.round >= next_line:
            print(_line(event), flush=True)
            next_line = event.round + max(1, math.ceil(event.total_rounds * PROGRESS_STEP))
        if ended:
            print(f"job {args.job_id} {event.state}: {event.message}")
    return 0


def _line(event: RoundEvent) -> str:
    extra = f": {event.message}" if event.message and not event.state.ended else ""
    acc = f" accuracy {event.accuracy:.4f}" if event.accuracy is not None else ""
    peers = f" peers {len(event.participants)}" if event.participants else ""
    return f"round {event.round}/{event.total_rounds or '?'} loss {_number(event.loss)}{acc}{peers}{extra}"


async def model_get(client: AsyncClient, args) -> int:
    """Saves the job's model: a state dict (torch.save) or a TorchScript
    module (torch.jit.save) rebuilt from the job's spec, which needs no
    spirtd to load."""
    import torch

    model = await client.model(args.job_id)
    if args.format == "torchscript":
        torch.jit.save(torch.jit.script(model.module()), args.output)
    else:
        torch.save(model.state_dict, args.output)
    if args.json:
        print(json.dumps({"job_id": args.job_id, "output": args.output, "format": args.format, "round": model.round,
                          "digest": model.digest, "tensors": len(model.state_dict),
                          "parameters": model.parameter_count}))  # fmt: skip
    else:
        print(f"saved {len(model.state_dict)} tensors ({model.parameter_count} parameters, round {model.round}, "
              f"digest {model.digest[:16]}...) as {args.format} to {args.output}")  # fmt: skip
    return 0


async def cancel(client: AsyncClient, args) -> int:
    state = await client.cancel(args.job_id)
    print(json.dumps({"job_id": args.job_id, "state": state.value}) if args.json else f"job {args.job_id}: {state}")
    return 0


async def plot(client: AsyncClient, args) -> int:
    """The job's rounds on one page, as the output's suffix says (PNG, SVG, PDF)."""
    status = await client.job_status(args.job_id)
    events = await client.history(args.job_id)
    from spirt_client.plot import plot_job

    plot_job(status, events, args.output)
    rounds = sum(1 for e in events if e.phase_s)
    if args.json:
        print(json.dumps({"job_id": args.job_id, "output": args.output, "rounds": rounds}))
    else:
        print(f"job {args.job_id}: {rounds} rounds plotted to {args.output}")
    return 0
