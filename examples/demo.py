"""`make demo`: three peers train one job on digits; one is SIGKILLed
mid-way, restarted, and catches up; they end with one model.

    .venv/bin/python examples/demo.py [--rounds N] [--kill-at K] [--out DIR]

It starts a local cluster (spirtd.localcluster: 3 peers on 127.0.0.1 with
fresh certificates, each with its own store, in a temporary folder under
/tmp), submits a job at node1 with spirt_client, and prints the rounds as
node1 reports them. At round K it SIGKILLs node2's daemon (its store and
workers die with it), restarts it at once, and waits until node2 takes part
in a round again (it first takes the others' state). Then it waits for the
job's end on every peer and prints each one's state, test accuracy and
digest, and whether the digests agree. DIR (default demo-out/) keeps the
job's plot (spirt_client's plot) and the peers' logs; the cluster's folder
is removed.

Exit status: 0 the job succeeded on every peer, one digest everywhere;
1 it did not, or a step took too long; 130 interrupted (Ctrl-C or SIGTERM),
every peer stopped.
"""

from __future__ import annotations

import argparse
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path
from types import FrameType

from spirt_client import Client, ClientError, JobState, JobStatus, RoundEvent
from spirtd.clock import SystemClock
from spirtd.errors import LocalClusterError
from spirtd.localcluster import LocalCluster

PEERS = 3
WITNESS, VICTIM = "node1", "node2"  # node1 is never killed: its events tell the story
ROUNDS = 1000
KILL_AT = 200  # early enough that node2 resyncs and trains again before the end: 800 rounds take 30-60 s
PRINT_EVERY = 100  # a line every this many rounds, besides every change of participants
DIGEST_CHARS = 12
OUT = Path("demo-out")
# A job that reports no round for this long is stuck (the first round comes
# after the workers start: up to 40 s on two busy cores).
STALL_S = 120.0
FINAL_S = 60.0  # how long each peer may take to report the job's end, once node1 did
# For each call: a submit to peers just started takes seconds (each peer
# loads the data and checks the model), more than the client's default 10 s
# on busy cores.
CALL_S = 60.0
EXIT_OK, EXIT_FAILED, EXIT_INTERRUPTED = 0, 1, 130

# Failure detection in about two seconds, calm enough for three daemons and
# their workers on two cores (the chaos test's settings); every round's event
# kept, for the plot (a peer keeps the newest 1000 unless told).
PEER_SETTINGS = """\
crl_poll_s = 0.5
[membership]
probe_interval_s = 0.5
probe_timeout_s = 0.2
gossip_interval_s = 0.2
push_pull_interval_s = 3.0
[jobs]
event_history = {history}
"""


def job_spec(rounds: int) -> dict:
    """The MLP on digits, small rounds: about 20 a second with three peers."""
    return {
        "name": "demo", "model": "mlp", "dataset": "digits", "batch_size": 32, "minibatches_per_round": 4,
        "rounds": rounds, "seed": 7, "eval_every": 10, "patience": 0,
        "optimizer": {"name": "sgd", "lr": 0.05, "momentum": 0.9},
        "limits": {"invocation_timeout_s": 30, "invocation_memory_mb": 1024, "max_attempts": 3},
        "workers": {"mode": "warm", "concurrency": 2},
        "peers": {"deadline_floor_s": 2, "deadline_ceiling_s": 10, "propose_timeout_s": 3, "report_timeout_s": 10},
    }  # fmt: skip


class DemoFailed(Exception):
    """A step of the demo did not happen in time, or the job failed."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop every peer and exit."""


class StopSignals:
    """SIGINT (Ctrl-C) and SIGTERM raise Interrupted in the main thread,
    once: from then on, and while the peers stop, they are ignored (a
    second Ctrl-C must not cut the stop short)."""

    def __init__(self) -> None:
        self._stopping = threading.Event()
        for sig in (signal.SIGINT, signal.SIGTERM):
            signal.signal(sig, self._asked)

    def stopping(self) -> None:
        self._stopping.set()

    def _asked(self, signum: int, frame: FrameType | None) -> None:
        if not self._stopping.is_set():
            self._stopping.set()
            raise Interrupted()


class Story:
    """Prints lines, each with the seconds since the demo began."""

    def __init__(self) -> None:
        self._clock = SystemClock()
        self._began = self._clock.monotonic()

    def elapsed_s(self) -> float:
        return self._clock.monotonic() - self._began

    def say(self, line: str) -> None:
        print(f"[{self.elapsed_s():6.1f} s] {line}", flush=True)


class RoundWatch:
    """The job's round events at one peer, read by a thread of its own: it
    prints a line every PRINT_EVERY rounds and whenever the participants
    change, and lets the main thread wait for an event."""

    def __init__(self, client: Client, job_id: str, story: Story) -> None:
        self._client, self._job_id, self._story = client, job_id, story
        self._changed = threading.Condition()
        self._events: list[RoundEvent] = []
        self._error: ClientError | None = None
        self._done = False
        self._thread = threading.Thread(target=self._read, name="round-watch", daemon=True)
        self._thread.start()

    def wait_for(self, wanted: Callable[[RoundEvent], bool], what: str) -> RoundEvent | None:
        """The first event (seen so far, or coming) that is wanted; None if
        the job ends without one; DemoFailed if no event comes for STALL_S."""
        checked = 0
        with self._changed:
            while True:
                for event in self._events[checked:]:
                    if wanted(event):
                        return event
                checked = len(self._events)
                if self._error is not None:
                    raise DemoFailed(f"{what}: watching the job at {WITNESS} failed: {self._error}")
                if self._done:
                    return None
                if not self._changed.wait(STALL_S):
                    raise DemoFailed(f"waiting for {what}, {WITNESS} reported no round for {STALL_S:.0f} s")

    def _read(self) -> None:
        shown: tuple[str, ...] = ()
        try:
            for event in self._client.events(self._job_id):
                if event.participants and contributors(event) != shown:
                    shown = contributors(event)
                    left_out = "".join(f"; {peer} left out ({why})" for peer, why in sorted(event.excluded.items()))
                    self._story.say(f"round {event.round}: {' '.join(shown)} took part{left_out}")
                elif event.round % PRINT_EVERY == 0 and not event.state.ended:
                    self._story.say(f"round {event.round}/{event.total_rounds}: {describe(event)}")
                if event.state.ended:
                    self._story.say(f"the job {event.state.value} at round {event.round}"
                                    + (f": {event.message}" if event.message else ""))  # fmt: skip
                with self._changed:
                    self._events.append(event)
                    self._changed.notify_all()
        except ClientError as exc:
            with self._changed:
                self._error = exc
        finally:
            with self._changed:
                self._done = True
                self._changed.notify_all()


def contributors(event: RoundEvent) -> tuple[str, ...]:
    """The round's peers whose work is in it (not those left out of it)."""
    return tuple(p for p in event.participants if p not in event.excluded)


def describe(event: RoundEvent) -> str:
    loss = "-" if event.loss is None else f"{event.loss:.3f}"
    accuracy = "-" if event.accuracy is None else f"{event.accuracy:.3f}"
    return f"training loss {loss}, validation accuracy {accuracy}, {len(contributors(event))} peers"


def run(args: argparse.Namespace, story: Story, signals: StopSignals) -> int:
    out = args.out.absolute()
    out.mkdir(parents=True, exist_ok=True)
    folder = Path(tempfile.mkdtemp(prefix="spirtd-demo-", dir="/tmp"))  # short: the stores' unix socket paths
    (folder / "spirtd.toml").write_text(PEER_SETTINGS.format(history=args.rounds + 1))  # and the end's event
    cluster = LocalCluster(PEERS, folder / "cluster", config=folder / "spirtd.toml")
    clients: dict[str, Client] = {}
    try:
        story.say(f"starting {PEERS} peers, each with its own store and fresh certificates, in {folder / 'cluster'}")
        cluster.start()
        clients = {p.id: Client(p.address, cluster.certs_dir, timeout_s=CALL_S) for p in cluster.peers}
        story.say("cluster up: " + ", ".join(f"{p.id} at {p.address}" for p in cluster.peers))
        code = train(cluster, clients, args, story, out)
    finally:
        signals.stopping()
        for client in clients.values():
            client.close()
        problems = cluster.stop()
        for problem in problems:
            story.say(f"stopping: {problem}")
        logs = folder / "cluster" / "logs"
        if logs.is_dir():
            shutil.rmtree(out / "logs", ignore_errors=True)
            shutil.copytree(logs, out / "logs")
        shutil.rmtree(folder, ignore_errors=True)
        if not problems:
            story.say(f"every peer stopped; their logs are in {out / 'logs'}")
    return EXIT_FAILED if problems else code


def train(cluster: LocalCluster, clients: dict[str, Client], args: argparse.Namespace, story: Story,
          out: Path) -> int:  # fmt: skip
    job_id = clients[WITNESS].submit(job_spec(args.rounds))
    story.say(f"job {job_id} submitted at {WITNESS}: an MLP on digits, {args.rounds} rounds; "
              f"{VICTIM} will be SIGKILLed at round {args.kill_at}")  # fmt: skip
    watch = RoundWatch(clients[WITNESS], job_id, story)
    at = watch.wait_for(lambda e: e.round >= args.kill_at, f"round {args.kill_at}")
    if at is None:
        raise DemoFailed(f"the job ended before round {args.kill_at}")
    victim = cluster.peer(VICTIM)
    story.say(f"round {at.round}: killing {VICTIM} (SIGKILL to its daemon, pid {victim.pid})")
    victim.signal(signal.SIGKILL)
    victim.proc.wait()  # type: ignore[union-attr]
    killed_s = story.elapsed_s()
    cluster.restart(VICTIM)
    story.say(f"{VICTIM} restarted (pid {victim.pid}) at its address {victim.address}, "
              f"{story.elapsed_s() - killed_s:.1f} s after the kill")  # fmt: skip
    back = watch.wait_for(lambda e: e.round > at.round and VICTIM in contributors(e), f"{VICTIM} back")
    if back is None:
        story.say(f"{VICTIM} did not take part again before the end (a peer behind takes the final state from "
                  "the others)")  # fmt: skip
    else:
        story.say(f"{VICTIM} back in at round {back.round}, {story.elapsed_s() - killed_s:.1f} s after the kill")
    watch.wait_for(lambda e: e.state.ended, "the job's end")
    finals = {peer: final_status(client, job_id, story) for peer, client in clients.items()}
    plot = out / "demo.png"
    clients[WITNESS].plot(job_id, str(plot))
    agree = all(f is not None and f.digest for f in finals.values()) and len({f.digest for f in finals.values()}) == 1
    ok = agree and all(f is not None and f.state is JobState.SUCCEEDED for f in finals.values())
    print_table(finals, at.round, back.round if back is not None else None)
    print(f"digests agree: {'yes' if agree else 'no'}", flush=True)
    print(f"plot: {plot}", flush=True)
    return EXIT_OK if ok else EXIT_FAILED


def final_status(client: Client, job_id: str, story: Story) -> JobStatus | None:
    try:
        return client.wait(job_id, timeout_s=FINAL_S)
    except ClientError as exc:
        story.say(f"no final status from {client.address}: {exc}")
        return None


def print_table(finals: dict[str, JobStatus | None], killed_at: int, back_at: int | None) -> None:
    print(flush=True)
    print(f"{'peer':<6} {'state':<10} {'test accuracy':<14} digest", flush=True)
    for peer, final in finals.items():
        note = ""
        if peer == VICTIM:
            back = f"back in at round {back_at}" if back_at is not None else "not back in before the end"
            note = f"   (SIGKILLed at round {killed_at}, {back})"
        if final is None:
            print(f"{peer:<6} {'unknown':<10} {'-':<14} -{note}", flush=True)
            continue
        accuracy = "-" if final.test_accuracy is None else f"{final.test_accuracy:.3f}"
        digest = final.digest[:DIGEST_CHARS] or "-"
        print(f"{peer:<6} {final.state.value:<10} {accuracy:<14} {digest}{note}", flush=True)
    for peer, final in finals.items():
        if final is not None and final.error:
            print(f"{peer}: {final.error}", flush=True)


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rounds", type=int, default=ROUNDS, help=f"the job's rounds (default {ROUNDS})")
    parser.add_argument("--kill-at", type=int, default=KILL_AT, help=f"SIGKILL {VICTIM} at this round "
                        f"(default {KILL_AT})")  # fmt: skip
    parser.add_argument("--out", type=Path, default=OUT, help=f"where the plot and logs go (default {OUT}/)")
    args = parser.parse_args(argv)
    if not 0 < args.kill_at < args.rounds:
        parser.error("--kill-at must be a round of the job: 0 < K < --rounds")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    story = Story()
    signals = StopSignals()
    try:
        return run(args, story, signals)
    except Interrupted:
        story.say("interrupted")
        return EXIT_INTERRUPTED
    except (DemoFailed, LocalClusterError, ClientError) as exc:
        story.say(f"demo failed: {exc}")
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
