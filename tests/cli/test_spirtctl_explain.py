"""spirtctl's words for a failed call, from the details real gRPC gives."""

import grpc
import pytest

from spirtctl.connection import explain

REFUSED = "failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:1: Failed to connect to remote host: Connection refused"
BAD_CA = ("failed to connect to all addresses; last error: UNKNOWN: ipv4:127.0.0.1:7101: Tls handshake failed "
          "(TSI_PROTOCOL_FAILURE): SSL_ERROR_SSL: error:1000007d:SSL routines:OPENSSL_internal:CERTIFICATE_VERIFY_FAILED")
REFUSED_BY_PEER = "failed to connect to all addresses; last error: UNAVAILABLE: ipv4:127.0.0.1:7101: Socket closed"


def error(code, details):
    return grpc.aio.AioRpcError(code, grpc.aio.Metadata(), grpc.aio.Metadata(), details)


@pytest.mark.parametrize(
    "details, words, not_words",
    [
        (REFUSED, "nothing answers there", "TLS"),
        (BAD_CA, "the TLS handshake failed", "nothing answers"),
        (REFUSED_BY_PEER, "the TLS handshake failed", "nothing answers"),
    ],
)
def test_unavailable_says_whether_anything_listens(details, words, not_words):
    text = str(explain(error(grpc.StatusCode.UNAVAILABLE, details), "127.0.0.1:7101", "client", 10))
    assert words in text and not_words not in text


def test_other_codes_keep_the_peers_words():
    text = str(explain(error(grpc.StatusCode.NOT_FOUND, "no job 'x' on this peer"), "p:1", "client", 10))
    assert text == "spirtd at p:1 answered NOT_FOUND: no job 'x' on this peer"
