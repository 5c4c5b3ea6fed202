"""spirt_client's (and so spirtctl's) words for a failed call, from the
details real gRPC gives (each string was seen against a running peer)."""

import grpc
import pytest

from spirt_client.connection import Target, explain
from spirt_client.errors import CallTimedOut, HandshakeFailed, InvalidRequest, NotFound, NotPermitted, PeerUnreachable

REFUSED = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused"
NO_SUCH_NAME = ("errors resolving nosuchhost.invalid:7000: [field:hostname lookup error:address lookup failed for "
                "nosuchhost.invalid:7000: Domain name not found]")  # fmt: skip
BAD_CA = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7101: Tls handshake failed "
          "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED")
OTHER_HOST = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7101: Custom verification "
              "check failed with error: UNAUTHENTICATED: Hostname Verification Check failed.")  # fmt: skip
REFUSED_BY_PEER = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:7101: Socket closed"
PEER = Target("127.0.0.1:7101", name="client")


def error(code, details):
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    "details, kind, words, not_words",
    [
        (REFUSED, PeerUnreachable, "nothing answers there", "TLS"),
        (NO_SUCH_NAME, PeerUnreachable, "nothing answers there", "TLS"),
        (BAD_CA, HandshakeFailed, "the peer's certificate is not trusted", "nothing answers"),
        (OTHER_HOST, HandshakeFailed, "does not name the host dialled", "nothing answers"),
        (REFUSED_BY_PEER, HandshakeFailed, "the peer hung up", "nothing answers"),
    ],
    ids=["connection-refused", "no-such-name", "untrusted-peer", "other-host", "peer-hung-up"],
)
def test_unavailable_says_whether_anything_listens_and_which_side_refused(details, kind, words, not_words):
    failed = explain(error(grpc.StatusCode.UNAVAILABLE, details), PEER, 10)
    assert type(failed) is kind and failed.address == PEER.address and failed.details == details
    assert words in str(failed) and not_words not in str(failed) and "127.0.0.1:7101" in str(failed)


@pytest.mark.parametrize(
    "code, kind",
    [(grpc.StatusCode.NOT_FOUND, NotFound), (grpc.StatusCode.INVALID_ARGUMENT, InvalidRequest),
     (grpc.StatusCode.PERMISSION_DENIED, NotPermitted)],  # fmt: skip
)
def test_refusals_keep_the_peers_words(code, kind):
    failed = explain(error(code, "no job 'x' on this peer"), Target("p:1"), 10)
    assert type(failed) is kind and failed.code == code and failed.details == "no job 'x' on this peer"
    assert "spirtd at p:1" in str(failed) and "no job 'x' on this peer" in str(failed)


def test_a_deadline_names_the_timeout():
    failed = explain(error(grpc.StatusCode.DEADLINE_EXCEEDED, "Deadline Exceeded"), PEER, 2.5)
    assert type(failed) is CallTimedOut and "did not answer within 2.5 s" in str(failed)


def test_other_codes_keep_the_peers_words():
    text = str(explain(error(grpc.StatusCode.NOT_FOUND, "no job 'x' on this peer"), Target("p:1"), 10))
    assert text == "spirtd at p:1 answered NOT_FOUND: no job 'x' on this peer"
