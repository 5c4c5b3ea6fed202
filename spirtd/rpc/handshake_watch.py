"""Sees the TLS handshakes that gRPC refuses before any code of ours runs.

gRPC (with require_client_auth) refuses a caller without a certificate, with
a certificate from another CA or an expired one, or sending anything but
TLS, inside its C core: Python never hears of it. Its handshaker trace does
say so, with the caller's address, on stderr. HandshakeWatch enables that
trace (before grpc is imported), owns fd 2 through a pipe, turns each
refused inbound handshake into a HandshakeRefusal (a log line and a counter
for the daemon), drops the rest of the trace, and passes everything else on
to the real stderr unchanged.

The trace format is gRPC's, not a stable API: tests/rpc pins what it looks
like for the gRPC version in use, so an upgrade that changes it fails there.
"""

from __future__ import annotations

import os
import re
import sys
import threading
from dataclasses import dataclass
from typing import Callable

TRACE_ENV = {"GRPC_TRACE": "handshaker", "GRPC_VERBOSITY": "INFO"}
READ_CHUNK = 65536

# glog-style prefix of gRPC core lines: "I1126 11:59:19.796758    4427 file.cc:155] "
_PREFIX = re.compile(r"^([IWEF])\d{4} \d\d:\d\d:\d\d\.\d+\s+\d+ [^\]]+\] ")
_FAILED = "CallNextHandshakerLocked: error="
_OWN_VERBOSITY_NOTICE = "Log level INFO is not suitable for production"
# What gRPC appends under a log line (status source locations, handshake args).
_CONTINUATION = re.compile(r"^(=== Source Location Trace: ===|src/\S+:\d+|\s*shutdown=.*)?\s*$")
# gRPC core's status source locations: a header, then src/...:N lines. Noise
# for whoever reads the log, whatever line they hang under: always dropped.
_TRACE_HEADER = re.compile(r"^=== Source Location Trace: ===\s*$")
_TRACE_LOCATION = re.compile(r"^(src/\S+:\d+)?\s*$")
_PEER = re.compile(r"endpoint_peer_address=([^,}\s]+)")
_SSL_REASON = re.compile(r"OPENSSL_internal:([A-Z_]+)(?:: ([^:]+))?")


# Every reason classify() gives (refused.<reason> counters).
HANDSHAKE_REASONS = ("no_certificate", "unknown_ca", "expired", "not_yet_valid", "not_tls", "handshake_timeout",
                     "tls_failed")  # fmt: skip


@dataclass(frozen=True)
class HandshakeRefusal:
    peer: str    # e.g. ipv4:10.77.0.12:41234
    reason: str  # counter key: no_certificate, unknown_ca, expired, not_yet_valid, not_tls,
    #              handshake_timeout, tls_failed
    detail: str  # in words


def classify(error: str) -> tuple[str, str] | None:
    """(reason, words) for a failed inbound handshake, None for a connection
    closed before it said anything (port checks, load balancer probes)."""
    error = error.strip().splitlines()[0] if error.strip() else ""
    if "Socket closed" in error and "SSL" not in error:
        return None
    if "Endpoint closing" in error or "Deadline Exceeded" in error:
        return "handshake_timeout", "the caller did not complete its TLS handshake in time (handshake_timeout_s)"
    match = _SSL_REASON.search(error)
    code, text = (match.group(1), (match.group(2) or "").strip()) if match else ("", error.strip())
    if code == "PEER_DID_NOT_RETURN_A_CERTIFICATE":
        return "no_certificate", "the caller presented no client certificate"
    if code == "CERTIFICATE_VERIFY_FAILED":
        if "expired" in text:
            return "expired", "the caller's certificate has expired"
        if "not yet valid" in text:
            return "not_yet_valid", "the caller's certificate is not valid yet"
        return "unknown_ca", f"the caller's certificate is not from the cluster CA ({text})"
    if code in ("WRONG_VERSION_NUMBER", "HTTP_REQUEST", "HTTPS_PROXY_REQUEST", "EXCESSIVE_MESSAGE_SIZE",
                "UNEXPECTED_RECORD", "PACKET_LENGTH_TOO_LONG", "RECORD_LENGTH_MISMATCH"):  # fmt: skip
        return "not_tls", f"the caller did not speak TLS ({code})"
    return "tls_failed", f"the TLS handshake failed ({code or text})"


class TraceParser:
    """Line by line: which lines to pass on, which refusals to report."""

    def __init__(self) -> None:
        self._record: list[str] | None = None
        self._dropping = False  # the last gRPC line was dropped: so are its continuations
        self._in_locations = False  # inside a source location trace

    def feed(self, line: str) -> tuple[str | None, HandshakeRefusal | None]:
        prefix = _PREFIX.match(line)
        if prefix is None and self._record is None:
            if _TRACE_HEADER.match(line):
                self._in_locations = True
                return None, None
            if self._in_locations and _TRACE_LOCATION.match(line):
                return None, None
        self._in_locations = False
        if prefix is None:
            if self._record is not None:
                self._record.append(line)
                return None, self._finish() if "args={" in line else None
            if self._dropping and _CONTINUATION.match(line):
                return None, None
            self._dropping = False
            return line, None
        self._record = None
        self._dropping = True
        if _OWN_VERBOSITY_NOTICE in line:
            return None, None  # gRPC's remark about the INFO level we set for the trace
        if _FAILED in line and f"{_FAILED}OK" not in line:
            self._record = [line]
            return None, None
        # Our own INFO verbosity is only there for the trace: drop INFO lines.
        self._dropping = prefix.group(1) == "I"
        return (None if self._dropping else line), None

    def _finish(self) -> HandshakeRefusal | None:
        text = "\n".join(self._record or [])
        self._record = None
        if "grpc.internal.server_credentials=" not in text:
            return None  # one of our own outgoing connections
        verdict = classify(text.split(_FAILED, 1)[1])
        if verdict is None:
            return None
        peer = _PEER.search(text)
        return HandshakeRefusal(peer.group(1) if peer else "unknown", *verdict)


class HandshakeWatch:
    """Owns fd 2 while running; see the module docstring. Start it before
    the first `import grpc`, and before logging is set up (handlers then
    write to the real stderr through sys.stderr)."""

    def __init__(self, on_refusal: Callable[[HandshakeRefusal], None]) -> None:
        self._on_refusal = on_refusal
        self._parser = TraceParser()
        self._saved_fd: int | None = None
        self._read_fd: int | None = None
        self._thread: threading.Thread | None = None

    @staticmethod
    def enable_trace() -> bool:
        """Sets gRPC's trace variables; False if grpc is already imported
        (then handshake refusals cannot be seen)."""
        os.environ.update(TRACE_ENV)
        return "grpc" not in sys.modules

    def start(self) -> None:
        if self._thread is not None:
            return
        sys.stderr.flush()
        self._saved_fd = os.dup(2)
        self._read_fd, write_fd = os.pipe()
        os.set_inheritable(self._saved_fd, False)
        os.dup2(write_fd, 2)
        os.close(write_fd)
        sys.stderr = os.fdopen(os.dup(self._saved_fd), "w", buffering=1, errors="replace")
        self._thread = threading.Thread(target=self._relay, name="handshake-watch", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Gives fd 2 back. Children that inherited the pipe may keep the
        reader alive until they exit; it is a daemon thread."""
        if self._saved_fd is None:
            return
        sys.stderr.flush()
        os.dup2(self._saved_fd, 2)
        sys.stderr = os.fdopen(os.dup(2), "w", buffering=1, errors="replace")
        os.close(self._saved_fd)
        self._saved_fd = None

    def _relay(self) -> None:
        out = self._saved_fd
        pending = b""
        while True:
            chunk = os.read(self._read_fd, READ_CHUNK)  # type: ignore[arg-type]
            if not chunk:
                break
            pending += chunk
            *lines, pending = pending.split(b"\n")
            passed = []
            for raw in lines:
                line, refusal = self._parser.feed(raw.decode(errors="replace"))
                if line is not None:
                    passed.append(line)
                if refusal is not None:
                    try:
                        self._on_refusal(refusal)
                    except Exception as exc:  # noqa: BLE001 - the relay must never stop reading
                        passed.append(f"spirtd: error reporting a refused handshake: {exc!r}")
            if passed and self._saved_fd is not None:
                try:
                    os.write(out, ("\n".join(passed) + "\n").encode())  # type: ignore[arg-type]
                except OSError:
                    pass  # stderr gone: keep draining so that writers never block
        os.close(self._read_fd)  # type: ignore[arg-type]
