"""Which members a peer sees alive, asked over mutual TLS as a client."""

from __future__ import annotations

from pathlib import Path

import grpc

from spirtd.api.spirt.v1 import control_pb2, control_pb2_grpc, membership_pb2
from spirtd.rpc.tls import channel_credentials
from spirtd.security.certsdir import CertsDir

CALL_TIMEOUT_S = 5.0
_ALIVE = membership_pb2.MemberState.Value("ALIVE")


class MembersAsker:
    def __init__(self, certs_dir: Path, name: str) -> None:
        certs = CertsDir(certs_dir)
        self._credentials = channel_credentials(certs.credentials(name), certs.ca_pem)

    def alive(self, address: str) -> set[str] | str:
        """The ids the peer at address sees alive, or why it could not say."""
        with grpc.secure_channel(address, self._credentials) as channel:
            try:
                reply = control_pb2_grpc.ControlStub(channel).Members(control_pb2.MembersRequest(),
                                                                      timeout=CALL_TIMEOUT_S)  # fmt: skip
            except grpc.RpcError as exc:
                return f"no answer ({exc.code().name})"  # type: ignore[attr-defined]
        return {m.id for m in reply.members if m.state == _ALIVE}
