"""The certificates spirtd makes work for mutual TLS with grpcio, end to end:
a grpc.aio server that requires client certificates, and channels that verify
the server by peer id (ssl_target_name_override) whatever address they dial."""

from __future__ import annotations

import datetime
import shutil
from pathlib import Path
from typing import AsyncIterator

import grpc
import pytest

from spirtd.security import ca
from spirtd.security.certsdir import CertsDir
from spirtd.security.identity import Role, identity_from_pem

from .conftest import now_s

pytestmark = pytest.mark.timeout(30)

CALL_TIMEOUT_S = 5.0
METHOD = "/spirt.test.Who/Am"
SERVER_ID = "node1"


class WhoAmI(grpc.GenericRpcHandler):
    """Answers with the caller's identity, as the server sees it in the TLS
    session: "<name> <role> <serial>"."""

    def service(self, details: grpc.HandlerCallDetails) -> grpc.RpcMethodHandler | None:
        if details.method != METHOD:
            return None
        return grpc.unary_unary_rpc_method_handler(self.handle_who)

    async def handle_who(self, request: bytes, context: grpc.aio.ServicerContext) -> bytes:
        pem = context.auth_context()["x509_pem_cert"][0]
        who = identity_from_pem(pem)
        return f"{who.name} {who.role.value} {who.serial}".encode()


@pytest.fixture
def cluster(ca_dir: Path, other_ca_dir: Path) -> Path:
    """ca_dir with node1 (the server), node2 (a peer), client (a client),
    expired (a peer whose certificate ran out) and, from another CA with the
    same name, stranger."""
    ca.issue(ca_dir, SERVER_ID, ips=["127.0.0.1"])
    ca.issue(ca_dir, "node2")
    ca.issue(ca_dir, "client", role=Role.CLIENT)
    ca.issue(ca_dir, "expired", now=now_s() - 3 * datetime.timedelta(days=1), days=1)
    ca.issue(other_ca_dir, "stranger")
    for suffix in (".crt", ".key"):
        shutil.copy(other_ca_dir / f"stranger{suffix}", ca_dir / f"stranger{suffix}")
    return ca_dir


@pytest.fixture
async def server_port(cluster: Path) -> AsyncIterator[int]:
    certs = CertsDir(cluster)
    own = certs.credentials(SERVER_ID, role=Role.PEER)
    server = grpc.aio.server()
    server.add_generic_rpc_handlers([WhoAmI()])
    creds = grpc.ssl_server_credentials(
        [(own.key_pem, own.cert_pem)], root_certificates=certs.ca_pem, require_client_auth=True
    )
    port = server.add_secure_port("127.0.0.1:0", creds)
    await server.start()
    try:
        yield port
    finally:
        await server.stop(None)


async def call_as(
    folder: Path, name: str, port: int, *, target: str = SERVER_ID, ca_pem: bytes | None = None
) -> str:
    """Calls the server presenting folder/NAME.crt, read straight from the
    files (no checks), and returns its answer."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=ca_pem or (folder / ca.CA_CERT).read_bytes(),
        private_key=(folder / f"{name}.key").read_bytes(),
        certificate_chain=(folder / f"{name}.crt").read_bytes(),
    )
    options = [("grpc.ssl_target_name_override", target)]
    async with grpc.aio.secure_channel(f"127.0.0.1:{port}", creds, options=options) as channel:
        answer = await channel.unary_unary(METHOD)(b"", timeout=CALL_TIMEOUT_S)
    return answer.decode()


@pytest.mark.parametrize(("name", "role"), [("node2", Role.PEER), ("client", Role.CLIENT)])
async def test_mtls_certificate_connects_and_server_sees_identity(
    cluster: Path, server_port: int, name: str, role: Role
) -> None:
    serial = CertsDir(cluster).credentials(name, role=role).identity.serial
    assert await call_as(cluster, name, server_port) == f"{name} {role.value} {serial}"


async def test_mtls_server_verified_by_dialled_address(cluster: Path, server_port: int) -> None:
    """Without an override the server is checked by the dialled address (its IP SAN)."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=(cluster / ca.CA_CERT).read_bytes(),
        private_key=(cluster / "node2.key").read_bytes(),
        certificate_chain=(cluster / "node2.crt").read_bytes(),
    )
    async with grpc.aio.secure_channel(f"127.0.0.1:{server_port}", creds) as channel:
        answer = await channel.unary_unary(METHOD)(b"", timeout=CALL_TIMEOUT_S)
    assert answer.decode().startswith("node2 peer ")


@pytest.mark.parametrize(
    ("name", "target", "other_ca"),
    [
        ("stranger", SERVER_ID, False),  # client certificate from another CA
        ("expired", SERVER_ID, False),  # client certificate past its end
        ("node2", "node2", False),  # the server is not the peer we meant to reach
        ("node2", SERVER_ID, True),  # the server's CA is not the one we trust
    ],
    ids=["client-other-ca", "client-expired", "server-wrong-id", "server-other-ca"],
)
async def test_mtls_untrusted_refused_at_handshake(
    cluster: Path, other_ca_dir: Path, server_port: int, name: str, target: str, other_ca: bool
) -> None:
    ca_pem = (other_ca_dir / ca.CA_CERT).read_bytes() if other_ca else None
    with pytest.raises(grpc.aio.AioRpcError) as info:
        await call_as(cluster, name, server_port, target=target, ca_pem=ca_pem)
    assert info.value.code() is grpc.StatusCode.UNAVAILABLE
