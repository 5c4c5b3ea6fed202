"""Reading refused TLS handshakes out of gRPC's handshaker trace.

handshaker_trace_grpc_1_85.txt is real stderr of a grpcio 1.85 server with
GRPC_TRACE=handshaker, while these connected in order: a good peer, a client
with no certificate, a certificate from another CA, an expired certificate,
300 random bytes, a connection closed at once, and a truncated TLS record.
The live test below runs a real server in a subprocess (the trace must be
switched on before grpc is imported), so a gRPC upgrade that changes the
trace fails here.
"""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import grpc
import pytest

from spirtd.rpc.handshake_watch import TraceParser, classify
from spirtd.security import ca

HERE = Path(__file__).parent
TRACE = HERE / "handshaker_trace_grpc_1_85.txt"
CALL_TIMEOUT_S = 5.0
SERVER_START_TIMEOUT_S = 20.0


def parse(text: str):
    parser, passed, refusals = TraceParser(), [], []
    for line in text.splitlines():
        out, refusal = parser.feed(line)
        if out is not None:
            passed.append(out)
        if refusal is not None:
            refusals.append(refusal)
    return passed, refusals


def test_trace_parser_finds_each_refused_handshake_in_order():
    passed, refusals = parse(TRACE.read_text())
    assert [r.reason for r in refusals] == ["no_certificate", "unknown_ca", "expired", "not_tls", "not_tls"]
    assert all(r.peer.startswith("ipv4:127.0.0.1:") for r in refusals)
    assert len({r.peer for r in refusals}) == len(refusals)


def test_trace_parser_drops_the_trace_and_keeps_other_lines():
    text = TRACE.read_text() + "\nTraceback (most recent call last):\nE1126 12:00:00.000000 1 x.cc:1] real error\n"
    passed, _ = parse(text)
    assert "Traceback (most recent call last):" in passed
    assert any("real error" in line for line in passed)
    assert not any("handshake" in line.lower() for line in passed)


def test_trace_parser_drops_source_location_traces_under_any_line():
    """What a peer's log filled with while a seed did not answer (the header
    comes with a trailing space there)."""
    text = ("E1201 23:17:02.000000 1 posix_engine.cc:309] connect failed: Connection refused\n"
            "=== Source Location Trace: === \nsrc/core/lib/event_engine/posix_engine/posix_engine.cc:309\n\n"
            "2026-12-01 23:17:03,920 WARNING spirtd: could not join yet\n"
            "=== Source Location Trace: ===\nsrc/core/util/status_helper.cc:68\n"
            "a line of our own\n")  # fmt: skip
    passed, _ = parse(text)
    assert passed == ["E1201 23:17:02.000000 1 posix_engine.cc:309] connect failed: Connection refused",
                      "2026-12-01 23:17:03,920 WARNING spirtd: could not join yet", "a line of our own"]


@pytest.mark.parametrize(
    "error, reason",
    [
        ("SSL_ERROR_SSL: error:100000c0:SSL routines:OPENSSL_internal:PEER_DID_NOT_RETURN_A_CERTIFICATE: x", "no_certificate"),
        ("error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate has expired", "expired"),
        ("error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: certificate is not yet valid", "not_yet_valid"),
        ("error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED: unable to get local issuer certificate", "unknown_ca"),
        ("error:100000f7:SSL routines:OPENSSL_internal:WRONG_VERSION_NUMBER: x", "not_tls"),
        ("error:1000009c:SSL routines:OPENSSL_internal:HTTP_REQUEST: x", "not_tls"),
        ("error:10000123:SSL routines:OPENSSL_internal:SOMETHING_ELSE: x", "tls_failed"),
        ("UNAVAILABLE: Handshake read failed (Endpoint closing)\n=== Source Location Trace: === \nsrc/x.cc:1",
         "handshake_timeout"),
    ],
)
def test_classify_names_the_reason(error, reason):
    assert classify(error)[0] == reason


def test_classify_ignores_a_connection_closed_before_speaking():
    assert classify("UNAVAILABLE: Handshake read failed (Socket closed)") is None


# ---- live: a real server in a subprocess with the watch on ----

SERVER = """
import asyncio, json, sys
from pathlib import Path
from spirtd.rpc.handshake_watch import HandshakeWatch
seen = []
watch = HandshakeWatch(lambda r: seen.append([r.reason, r.peer]))
assert watch.enable_trace()
watch.start()
import grpc
certs = Path(sys.argv[1])
async def main():
    handler = grpc.method_handlers_generic_handler("t.T", {
        "Seen": grpc.unary_unary_rpc_method_handler(lambda req, ctx: json.dumps(seen).encode())})
    server = grpc.aio.server()
    server.add_generic_rpc_handlers((handler,))
    creds = grpc.ssl_server_credentials([((certs / "node1.key").read_bytes(), (certs / "node1.crt").read_bytes())],
                                        root_certificates=(certs / "ca.crt").read_bytes(), require_client_auth=True)
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    print(port, flush=True)
    sys.stderr.write("a line from python goes through\\n")
    await server.wait_for_termination()
asyncio.run(main())
"""


@pytest.fixture
def certs(tmp_path):
    import datetime

    good, other = tmp_path / "good", tmp_path / "other"
    ca.init_ca(good)
    ca.issue(good, "node1", ips=["127.0.0.1"])
    ca.issue(good, "peer2")
    past = datetime.datetime.now(datetime.timezone.utc) - datetime.timedelta(days=30)
    ca.issue(good, "old", now=past, days=1)
    ca.init_ca(other)
    ca.issue(other, "mallory")
    return good, other


def call(port: int, folder: Path, name: str | None) -> bytes | grpc.StatusCode:
    kw = {}
    if name is not None:
        kw = {"private_key": (folder / f"{name}.key").read_bytes(),
              "certificate_chain": (folder / f"{name}.crt").read_bytes()}  # fmt: skip
    creds = grpc.ssl_channel_credentials((folder.parent / "good" / "ca.crt").read_bytes(), **kw)
    with grpc.secure_channel(f"127.0.0.1:{port}", creds, options=[("grpc.ssl_target_name_override", "node1")]) as ch:
        try:
            return ch.unary_unary("/t.T/Seen")(b"", timeout=CALL_TIMEOUT_S)
        except grpc.RpcError as exc:
            return exc.code()


def test_handshake_watch_reports_refusals_of_a_live_server(certs, tmp_path):
    good, other = certs
    err = open(tmp_path / "stderr.txt", "wb")
    proc = subprocess.Popen([sys.executable, "-c", SERVER, str(good)], stdout=subprocess.PIPE, stderr=err, text=True)
    try:
        port = int(proc.stdout.readline())
        assert call(port, good, None) == grpc.StatusCode.UNAVAILABLE
        assert call(port, other, "mallory") == grpc.StatusCode.UNAVAILABLE
        assert call(port, good, "old") == grpc.StatusCode.UNAVAILABLE
        with socket.create_connection(("127.0.0.1", port)) as s:
            s.sendall(os.urandom(300))
            s.settimeout(CALL_TIMEOUT_S)
            assert s.recv(100) == b""
        socket.create_connection(("127.0.0.1", port)).close()
        seen = json.loads(call(port, good, "peer2"))
    finally:
        proc.kill()
        proc.wait()
        err.close()
    assert [reason for reason, _ in seen] == ["no_certificate", "unknown_ca", "expired", "not_tls"]
    stderr = (tmp_path / "stderr.txt").read_text()
    assert "a line from python goes through" in stderr
    assert "CallNextHandshakerLocked" not in stderr


def test_trace_parser_drops_continuations_of_dropped_lines_but_not_tracebacks():
    text = (
        "I1126 12:09:05.000000 1 channel_trace.h:396] handshake manager 0x1: Failed with error: UNAVAILABLE\n"
        "=== Source Location Trace: ===\n"
        "src/core/lib/event_engine/posix_engine/posix_engine.cc:309\n"
        "\n"
        "Traceback (most recent call last):\n"
        '  File "x.py", line 1, in <module>\n'
        "W1126 12:09:06.000000 1 log.cc:102] Log level INFO is not suitable for production. Prefer WARNING\n"
    )
    passed, refusals = parse(text)
    assert passed == ["Traceback (most recent call last):", '  File "x.py", line 1, in <module>']
    assert refusals == []
