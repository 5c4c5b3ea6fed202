"""The worker protocol: what a pool and a worker process say over the
worker's stdin and stdout. Plain synchronous code, no I/O.

One message per line, each a JSON object with a "type" (and "v", the
protocol version, on the first line a worker writes):

    worker -> pool   {"type": "ready", "v": 1, "pid": 123, "import_s": 0.41}
                         once, after the handler module is imported
                     {"type": "fatal", "v": 1, "error": "ModuleNotFoundError: ..."}
                         instead of ready, when the handler cannot be loaded;
                         the worker then exits with code 2
    pool -> worker   {"type": "invoke", "seq": 7, "request": {...}}
    worker -> pool   {"type": "reply", "seq": 7, "ok": true, "reply": {...}, "run_s": 0.02}
                     {"type": "reply", "seq": 7, "ok": false, "error_type": "ValueError",
                      "error": "boom", "traceback": "..."}
                         exactly one reply per invoke, with its seq, in order
    pool closes the worker's stdin: the worker exits with code 0.

Requests and replies are small JSON objects (ids, store keys, numbers);
tensors travel through the store, never through the pipe. JSON keeps the
pipe readable in a log and safe to decode; NaN and infinities pass (both
ends are Python). A line longer than the pool's max_message_bytes is a
protocol error.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from spirtd.errors import ProtocolError

VERSION = 1


@dataclass(frozen=True)
class Ready:
    pid: int
    import_s: float  # how long importing the handler took in the worker


@dataclass(frozen=True)
class Fatal:
    error: str  # why the handler could not be loaded


@dataclass(frozen=True)
class Invoke:
    seq: int
    request: dict[str, Any]


@dataclass(frozen=True)
class Reply:
    seq: int
    ok: bool
    reply: dict[str, Any] | None = None  # when ok
    run_s: float = 0.0  # the handler's own time, measured in the worker
    error_type: str = ""  # when not ok: the exception's class name
    error: str = ""  # when not ok: str(exception)
    traceback: str = ""  # when not ok


Message = Ready | Fatal | Invoke | Reply


def encode(message: Message) -> bytes:
    """One line, newline included. Raises ProtocolError when a request or
    reply holds something JSON cannot carry."""
    if isinstance(message, Ready):
        body: dict[str, Any] = {"type": "ready", "v": VERSION, "pid": message.pid, "import_s": message.import_s}
    elif isinstance(message, Fatal):
        body = {"type": "fatal", "v": VERSION, "error": message.error}
    elif isinstance(message, Invoke):
        body = {"type": "invoke", "seq": message.seq, "request": message.request}
    elif isinstance(message, Reply):
        body = {"type": "reply", "seq": message.seq, "ok": message.ok}
        if message.ok:
            body.update(reply=message.reply, run_s=message.run_s)
        else:
            body.update(error_type=message.error_type, error=message.error, traceback=message.traceback)
    else:
        raise TypeError(f"not a protocol message: {message!r}")
    try:
        # json.dumps escapes newlines inside strings, so one message is one line.
        return json.dumps(body, separators=(",", ":")).encode() + b"\n"
    except (TypeError, ValueError) as exc:
        raise ProtocolError(f"cannot encode a {body['type']} message as JSON: {exc}") from None


def decode(line: bytes) -> Message:
    """The message on one line (its newline optional). Raises ProtocolError
    for anything else, quoting the start of the line."""
    try:
        body = json.loads(line)
    except (UnicodeDecodeError, ValueError):
        raise ProtocolError(f"not a JSON line: {_quote(line)}") from None
    if not isinstance(body, dict):
        raise ProtocolError(f"not a JSON object: {_quote(line)}")
    kind = body.get("type")
    try:
        if kind in ("ready", "fatal") and body.get("v") != VERSION:
            raise ProtocolError(f"protocol version {body.get('v')!r}, expected {VERSION}")
        if kind == "ready":
            return Ready(pid=_int(body["pid"]), import_s=_float(body["import_s"]))
        if kind == "fatal":
            return Fatal(error=str(body["error"]))
        if kind == "invoke":
            return Invoke(seq=_int(body["seq"]), request=_object(body["request"]))
        if kind == "reply":
            seq, ok = _int(body["seq"]), body["ok"]
            if ok is True:
                return Reply(seq=seq, ok=True, reply=_object(body["reply"]), run_s=_float(body["run_s"]))
            if ok is False:
                return Reply(
                    seq=seq, ok=False, error_type=str(body["error_type"]), error=str(body["error"]),
                    traceback=str(body["traceback"]),
                )  # fmt: skip
            raise ProtocolError(f"reply 'ok' must be true or false: {_quote(line)}")
    except KeyError as exc:
        raise ProtocolError(f"{kind} message without {exc}: {_quote(line)}") from None
    raise ProtocolError(f"unknown message type {kind!r}: {_quote(line)}")


_QUOTE_MAX = 120


def _quote(line: bytes) -> str:
    text = line.decode(errors="replace").rstrip("\n")
    return repr(text if len(text) <= _QUOTE_MAX else text[:_QUOTE_MAX] + "...")


def _int(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise ProtocolError(f"expected an integer, got {value!r}")
    return value


def _float(value: Any) -> float:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ProtocolError(f"expected a number, got {value!r}")
    return float(value)


def _object(value: Any) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ProtocolError(f"expected a JSON object, got {type(value).__name__}")
    return value
