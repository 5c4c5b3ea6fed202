"""What spirt_client raises, from both clients, against a real peer and real
sockets: certificates the peer or this client does not accept, an address
where nothing listens or nothing answers, and the server's own refusals."""

from __future__ import annotations

import asyncio
import socket

import pytest

from spirt_client import (
    AsyncClient,
    CallTimedOut,
    Client,
    HandshakeFailed,
    InvalidRequest,
    NotFound,
    NotPermitted,
    PeerUnreachable,
)
from spirtd.errors import ConfigError
from spirtd.security import ca
from spirtd.security.identity import Role
from tests.client.conftest import CALL_S

SHORT_TIMEOUT_S = 0.5


def ask(kind: str, address: str, certs, method: str, *args, **options):
    """Calls method on a Client (from a plain thread) or an AsyncClient (in an event loop)."""
    options.setdefault("timeout_s", CALL_S)
    if kind == "sync":
        with Client(address, certs, **options) as client:
            return getattr(client, method)(*args)

    async def call():
        async with AsyncClient(address, certs, **options) as client:
            return await getattr(client, method)(*args)

    return asyncio.run(call())


BOTH = pytest.mark.parametrize("kind", ["sync", "async"])


@pytest.fixture(scope="module")
def elsewhere(tmp_path_factory, certs):
    """Certs dirs that fail the handshake: another cluster's (its CA does not
    know the peer), and one whose client certificate is another CA's while
    its ca.crt bundle also trusts the cluster (the peer refuses it)."""
    other = tmp_path_factory.mktemp("elsewhere")
    ca.init_ca(other)
    ca.issue(other, "client", role=Role.CLIENT)
    mixed = tmp_path_factory.mktemp("mixed")
    for suffix in ("crt", "key"):
        (mixed / f"client.{suffix}").write_bytes((other / f"client.{suffix}").read_bytes())
    (mixed / "client.key").chmod(0o600)
    (mixed / "ca.crt").write_bytes((other / "ca.crt").read_bytes() + (certs / "ca.crt").read_bytes())
    return {"other-cluster": other, "own-certificate-refused": mixed}


@BOTH
@pytest.mark.parametrize(
    "which, words",
    [("other-cluster", "the peer's certificate is not trusted"), ("own-certificate-refused", "the peer hung up")],
)
def test_wrong_certificates_fail_the_handshake_saying_which_side_refused(peer, elsewhere, kind, which, words):
    with pytest.raises(HandshakeFailed) as info:
        ask(kind, peer.address, elsewhere[which], "status")
    assert words in str(info.value) and peer.address in str(info.value) and info.value.address == peer.address


@BOTH
def test_a_peer_certificate_naming_another_host(peer, certs, kind):
    with pytest.raises(HandshakeFailed, match="does not name the host dialled"):
        ask(kind, peer.address, certs, "status", peer_id="node7")


def test_a_missing_certificate_is_named_before_any_call(peer, certs):
    with pytest.raises(ConfigError, match="no nobody.crt in"):
        Client(peer.address, certs, name="nobody")


@BOTH
def test_an_address_where_nothing_listens(certs, kind):
    with socket.socket() as s:  # a port just free: nothing listens there
        s.bind(("127.0.0.1", 0))
        address = f"127.0.0.1:{s.getsockname()[1]}"
    with pytest.raises(PeerUnreachable, match=f"cannot reach spirtd at {address}: nothing answers there"):
        ask(kind, address, certs, "status")


@BOTH
def test_an_address_where_nothing_answers_times_out(certs, kind):
    with socket.socket() as silent:  # accepts connections, never speaks TLS
        silent.bind(("127.0.0.1", 0))
        silent.listen()
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        with pytest.raises(CallTimedOut, match=f"spirtd at {address} did not answer within {SHORT_TIMEOUT_S} s"):
            ask(kind, address, certs, "status", timeout_s=SHORT_TIMEOUT_S)


@BOTH
def test_refusals_carry_the_servers_message(trained, certs, kind):
    address = trained.peer.address
    with pytest.raises(NotFound) as missing:
        ask(kind, address, certs, "job_status", "jnosuchjob")
    assert missing.value.details == "no job 'jnosuchjob' on this peer"
    with pytest.raises(InvalidRequest) as bad:
        ask(kind, address, certs, "submit", {"model": "mlp", "dataset": "digits", "bogus": 1})
    assert "unknown key 'bogus' in the job spec" in bad.value.details and address in str(bad.value)
    with pytest.raises(NotPermitted) as not_owner:
        ask(kind, address, certs, "model", trained.job_id, name="bob")
    assert f"job {trained.job_id} belongs to 'client'" in not_owner.value.details
