"""spirtctl --peer HOST:PORT --certs-dir DIR [--name NAME] COMMAND [--json]

    status                  the peer's id, version, uptime, store backend and member count
    members [--watch]       every member it knows: id, address, state, incarnation, rtt
                            (--watch: membership events as they happen)
    submit SPEC [--wait]    submit a training job (TOML or JSON spec); prints its id
                            (--wait: then waits for the job's end and prints its status)
    job status JOB          a job's state, round, accuracy, model digest
    job list                every job the peer knows: state, rounds, model, owner
    job delete JOB          delete an ended job: its record and its model
    watch JOB               a job's progress (a bar on a terminal: round, loss, accuracy,
                            peers; --json: one line per round event)
    model get JOB -o FILE   the job's model: a torch state dict (torch.save), or with
                            --format torchscript a module torch.jit.load reads
    cancel JOB              stop a job
    health [--service S]    the gRPC health check: SERVING, or NOT_SERVING while the
                            peer starts or shuts down; exits 0 only when SERVING
    plot JOB -o FILE.png    a job's rounds on one page: loss and accuracy, participants,
                            the time of each phase and the bytes exchanged

Every command takes --json (one JSON document, or for watch and members
--watch one per line). A client may read the model of, cancel and delete
only the jobs it submitted; an operator certificate (spirtd certs issue
NAME --role operator) may act on any job.

It authenticates with the certificate NAME (default: client) from the certs
dir: DIR/NAME.crt and DIR/NAME.key, signed by the cluster CA in DIR/ca.crt.
A refused or failed call exits 1 with the reason on stderr (health: also
when the answer is not SERVING).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from spirt_client import AsyncClient, ClientError, Member, Status
from spirt_client.connection import DEFAULT_TIMEOUT_S
from spirtd.errors import ConfigError, SpirtError
from spirtctl import health, jobs

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def print_status(s: Status) -> None:
    print(f"{s.id} (spirtd {s.version}) at {s.address}: up {s.uptime_s:.1f} s, "
          f"store {s.store_backend or 'unknown'}, {s.member_count} members ({s.alive_count} alive)")  # fmt: skip
    for name, value in sorted(s.counters.items()):
        print(f"  {name}: {value}")


def print_members(members: list[Member]) -> None:
    print(f"{'ID':<20} {'ADDRESS':<24} {'STATE':<8} {'INC':>5} {'RTT ms':>8}")
    for m in members:
        print(f"{m.id:<20} {m.address:<24} {m.state:<8} {m.incarnation:>5} {m.rtt_ms:>8.2f}")


async def membership(client: AsyncClient, args: argparse.Namespace) -> int:
    if args.command == "status":
        status = await client.status()
        print(json.dumps(status.to_dict())) if args.json else print_status(status)
    elif not args.watch:
        members = await client.members()
        print(json.dumps([m.to_dict() for m in members])) if args.json else print_members(members)
    else:
        async for event in client.watch_members(include_current=True):
            if args.json:
                print(json.dumps({"kind": event.kind, "time_unix": event.time_unix, **event.member.to_dict()}),
                      flush=True)  # fmt: skip
            else:
                print(f"{event.kind:<8} {event.member.id} {event.member.address}", flush=True)
    return EXIT_OK


COMMANDS = {
    "status": membership,
    "members": membership,
    "submit": jobs.submit,
    "job": jobs.job,
    "watch": jobs.watch,
    "model": jobs.model_get,
    "cancel": jobs.cancel,
    "plot": jobs.plot,
    "health": health.check,
}


async def run(args: argparse.Namespace) -> int:
    async with AsyncClient(args.peer, args.certs_dir, name=args.name, peer_id=args.peer_id, insecure=args.insecure,
                           timeout_s=args.timeout) as client:  # fmt: skip
        return await COMMANDS[args.command](client, args)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="spirtctl", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)  # fmt: skip
    parser.add_argument("--peer", required=True, help="HOST:PORT of a running spirtd")
    parser.add_argument("--certs-dir", type=Path, help="dir with ca.crt and NAME.crt/NAME.key")
    parser.add_argument("--name", default="client", help="the certificate to use (default: client)")
    parser.add_argument("--peer-id", help="expect this peer id in its certificate (default: the host dialled)")
    parser.add_argument("--timeout", type=float, default=DEFAULT_TIMEOUT_S, help="seconds to wait for an answer")
    parser.add_argument("--insecure", action="store_true", help="plaintext, for a spirtd run with --insecure")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)
    json_flag = {"action": "store_true", "help": "machine-readable output"}
    commands.add_parser("status", help="the peer's status").add_argument("--json", **json_flag)
    members = commands.add_parser("members", help="the members it knows")
    members.add_argument("--json", **json_flag)
    members.add_argument("--watch", action="store_true", help="membership events as they happen")
    submit = commands.add_parser("submit", help="submit a training job")
    submit.add_argument("spec_file", help="the job spec (TOML or JSON)")
    submit.add_argument("--wait", action="store_true", help="block until the job ends")
    submit.add_argument("--json", **json_flag)
    job = commands.add_parser("job", help="a job's status")
    job_actions = job.add_subparsers(dest="job_action", metavar="ACTION", required=True)
    job_status = job_actions.add_parser("status", help="state, round, accuracy, model digest")
    job_status.add_argument("job_id")
    job_status.add_argument("--json", **json_flag)
    job_actions.add_parser("list", help="every job the peer knows").add_argument("--json", **json_flag)
    job_delete = job_actions.add_parser("delete", help="delete an ended job and its model")
    job_delete.add_argument("job_id")
    job_delete.add_argument("--json", **json_flag)
    watch = commands.add_parser("watch", help="a job's progress")
    watch.add_argument("job_id")
    watch.add_argument("--json", **json_flag)
    model = commands.add_parser("model", help="a job's model")
    model_actions = model.add_subparsers(dest="model_action", metavar="ACTION", required=True)
    model_get = model_actions.add_parser("get", help="save it as a torch state dict or TorchScript")
    model_get.add_argument("job_id")
    model_get.add_argument("-o", "--output", required=True, help="FILE.pt")
    model_get.add_argument("--format", choices=jobs.MODEL_FORMATS, default="state-dict",
                           help="state-dict (torch.save; the default) or torchscript (torch.jit.save)")  # fmt: skip
    model_get.add_argument("--json", **json_flag)
    cancel = commands.add_parser("cancel", help="stop a job")
    cancel.add_argument("job_id")
    cancel.add_argument("--json", **json_flag)
    plot = commands.add_parser("plot", help="a job's rounds as a picture")
    plot.add_argument("job_id")
    plot.add_argument("-o", "--output", required=True, help="FILE.png (or .svg, .pdf)")
    plot.add_argument("--json", **json_flag)
    check = commands.add_parser("health", help="the gRPC health check (exit 0 only when SERVING)")
    check.add_argument("--service", default="", help="one service's status (default: the peer as a whole)")
    check.add_argument("--json", **json_flag)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    if not args.insecure and args.certs_dir is None:
        print("spirtctl: error: --certs-dir is needed (or --insecure)", file=sys.stderr)
        return EXIT_USAGE
    try:
        return asyncio.run(run(args))
    except KeyboardInterrupt:
        return EXIT_OK
    except ConfigError as exc:
        print(f"spirtctl: error: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except (ClientError, SpirtError, jobs.JobEnded) as exc:
        print(f"spirtctl: error: {exc}", file=sys.stderr)
        return EXIT_FAILED
    except (OSError, ValueError) as exc:
        print(f"spirtctl: error: {exc}", file=sys.stderr)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
