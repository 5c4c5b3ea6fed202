"""A worker process: `python -m spirtd.workers.worker_main package.module:function`.

It imports the handler once (a warm worker keeps whatever the module
imported, torch for instance, loaded), says it is ready, then serves
invocations over its stdin and stdout (spirtd.workers.protocol): for each
request line it calls `function(request: dict) -> dict` and writes the reply
line, until stdin closes, and then exits with code 0.

The contract a handler keeps: it is stateless. Whatever it keeps between two
calls (module globals, caches, a random generator's state) must not change
any result: state comes from the request and the store, results go to the
store and the reply. A pool may run a request on any worker, more than once
(retries), or in a fresh process (cold mode), and must get the same result.
A cache of things that never change (a dataset read from disk, a compiled
model) is fine.

What the worker does so that a handler cannot break the protocol:
- the pipe fds are moved away from 0 and 1: fd 1 (and sys.stdout) go to
  stderr and fd 0 reads /dev/null, so a print, a C library writing to fd 1,
  or a handler reading stdin cannot corrupt or steal a message;
- an exception from the handler becomes an error reply (type, text,
  traceback) and the worker goes on serving; SystemExit and
  KeyboardInterrupt end the process (the pool sees a crash);
- SIGINT is ignored: the pool owns the worker's life (a Ctrl-C in a
  terminal reaches the whole process group);
- with --parent-pid, the worker asks Linux to SIGKILL it when the thread
  that started it dies (PR_SET_PDEATHSIG), so that a pool killed without
  closing leaves no busy worker behind (an idle one exits on EOF anyway);
- with --data-limit-mb, RLIMIT_DATA is set: a backstop against allocations
  too fast for the pool's memory watchdog (a handler then sees MemoryError).

Exit codes: 0 stdin closed; 2 the handler could not be loaded (a fatal
message says why); 3 the pool sent something that is not a protocol message;
4 the parent was gone before the worker started.
"""

from __future__ import annotations

import argparse
import importlib
import os
import re
import resource
import signal
import sys
import traceback
from collections.abc import Callable
from typing import Any, BinaryIO

from spirtd.clock import Clock, SystemClock
from spirtd.errors import ConfigError, ProtocolError
from spirtd.processes import die_with_parent
from spirtd.workers import chaos, protocol

Handler = Callable[[dict[str, Any]], dict[str, Any]]

HANDLER_SPEC = re.compile(r"^[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*$")
EXIT_OK, EXIT_NO_HANDLER, EXIT_PROTOCOL, EXIT_ORPHAN = 0, 2, 3, 4
_MB = 1 << 20


def check_handler_spec(spec: str) -> None:
    """Raises ConfigError unless spec reads "package.module:function"."""
    if not isinstance(spec, str) or not HANDLER_SPEC.match(spec):
        raise ConfigError(f'a handler is named "package.module:function", not {spec!r}')


def load_handler(spec: str) -> Handler:
    """Imports the module and returns the function. Raises ConfigError for a
    malformed spec or a name that is not callable; import errors pass."""
    check_handler_spec(spec)
    module_name, _, attr = spec.partition(":")
    module = importlib.import_module(module_name)
    handler = getattr(module, attr, None)
    if not callable(handler):
        raise ConfigError(f"{module_name} has no function {attr!r}")
    return handler


def call_handler(handler: Handler, invoke: protocol.Invoke, clock: Clock) -> protocol.Reply:
    """Runs one invocation; any exception from the handler becomes an error
    reply (this is the isolation boundary, so Exception is caught on
    purpose), as does a reply that is not a dict or not JSON."""
    start = clock.monotonic()
    try:
        chaos.apply(invoke.request)  # off unless SPIRTD_CHAOS asks a failure of this request
        result = handler(invoke.request)
        if not isinstance(result, dict):
            raise TypeError(f"the handler returned {type(result).__name__}, not a dict")
        reply = protocol.Reply(seq=invoke.seq, ok=True, reply=result, run_s=clock.monotonic() - start)
        protocol.encode(reply)  # fails here, as the handler's error, if the reply is not JSON
        return reply
    except Exception as exc:  # noqa: BLE001 - reported to the pool, not swallowed
        return protocol.Reply(
            seq=invoke.seq, ok=False, error_type=type(exc).__name__, error=str(exc),
            traceback=traceback.format_exc(),
        )  # fmt: skip


def serve(handler: Handler, requests: BinaryIO, replies: BinaryIO, clock: Clock) -> int:
    """Answers request lines until EOF; returns the exit code."""
    for line in requests:
        try:
            message = protocol.decode(line)
        except ProtocolError as exc:
            print(f"worker {os.getpid()}: {exc}", file=sys.stderr, flush=True)
            return EXIT_PROTOCOL
        if not isinstance(message, protocol.Invoke):
            print(f"worker {os.getpid()}: expected an invoke message, got {message!r}", file=sys.stderr, flush=True)
            return EXIT_PROTOCOL
        replies.write(protocol.encode(call_handler(handler, message, clock)))
        replies.flush()
    return EXIT_OK


def _take_pipes() -> tuple[BinaryIO, BinaryIO]:
    """Moves the protocol pipes to private fds (not inherited by anything the
    handler starts); fd 0 then reads /dev/null and fd 1 writes to stderr."""
    sys.stdout.flush()
    request_fd, reply_fd = os.dup(0), os.dup(1)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.close(null_fd)
    os.dup2(2, 1)
    sys.stdout = sys.stderr  # line by line, not held in a pipe's block buffer
    return os.fdopen(request_fd, "rb"), os.fdopen(reply_fd, "wb")


def _limit_data(limit_mb: int) -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_DATA)
    soft = limit_mb * _MB
    if hard != resource.RLIM_INFINITY:
        soft = min(soft, hard)
    resource.setrlimit(resource.RLIMIT_DATA, (soft, hard))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m spirtd.workers.worker_main", description=__doc__.split("\n")[0])
    parser.add_argument("handler", help="package.module:function")
    parser.add_argument("--data-limit-mb", type=int, default=None, help="RLIMIT_DATA, a backstop (MiB)")
    parser.add_argument("--parent-pid", type=int, default=None, help="die with this process (the pool's)")
    args = parser.parse_args(argv)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    arm = die_with_parent(signal.SIGKILL, args.parent_pid) if args.parent_pid is not None else None
    if arm is not None and not arm():
        return EXIT_ORPHAN  # the pool died before the worker asked
    requests, replies = _take_pipes()
    clock = SystemClock()
    if args.data_limit_mb is not None:
        _limit_data(args.data_limit_mb)
    start = clock.monotonic()
    try:
        handler = load_handler(args.handler)
    except Exception as exc:  # noqa: BLE001 - any import failure is reported, then we exit
        replies.write(protocol.encode(protocol.Fatal(error=f"cannot load {args.handler}: {type(exc).__name__}: {exc}")))
        replies.flush()
        traceback.print_exc()
        return EXIT_NO_HANDLER
    replies.write(protocol.encode(protocol.Ready(pid=os.getpid(), import_s=clock.monotonic() - start)))
    replies.flush()
    try:
        return serve(handler, requests, replies, clock)
    except BrokenPipeError:
        return EXIT_OK  # the pool went away; nobody to answer


if __name__ == "__main__":
    sys.exit(main())
