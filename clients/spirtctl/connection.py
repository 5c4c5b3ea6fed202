"""A client's mutual-TLS channel to one peer, and errors in words."""

from __future__ import annotations

from pathlib import Path

import grpc

from spirtd.api.spirt.v1 import control_pb2_grpc
from spirtd.errors import SpirtError
from spirtd.rpc.tls import channel_credentials, verify_as
from spirtd.security.certsdir import CertsDir


class CallFailed(SpirtError):
    """A call to the peer failed; the message says why and what to check."""


def open_channel(peer: str, certs_dir: Path | None, name: str, peer_id: str | None,
                 insecure: bool) -> grpc.aio.Channel:  # fmt: skip
    if insecure:
        return grpc.aio.insecure_channel(peer)
    certs = CertsDir(certs_dir)  # type: ignore[arg-type]
    own = certs.credentials(name)
    return grpc.aio.secure_channel(peer, channel_credentials(own, certs.ca_pem), options=verify_as(peer_id))


# What gRPC's details say when nothing listens, or the name does not resolve:
# no TLS handshake took place, so advice about certificates would mislead.
_NOT_LISTENING = ("Connection refused", "No route to host", "Network is unreachable", "DNS resolution failed",
                  "Name or service not known")  # fmt: skip
# A handshake that failed: the peer refused this client, or this client the peer.
_HANDSHAKE = ("handshake", "SSL", "TLS", "certificate", "Socket closed", "Connection reset")


def explain(exc: grpc.aio.AioRpcError, peer: str, name: str, timeout_s: float) -> CallFailed:
    code, details = exc.code(), exc.details() or ""
    if code == grpc.StatusCode.UNAVAILABLE and any(words in details for words in _NOT_LISTENING):
        return CallFailed(f"cannot reach spirtd at {peer}: nothing answers there ({_first_line(details)}); "
                          "is it running, and is that its --listen address?")  # fmt: skip
    if code == grpc.StatusCode.UNAVAILABLE and any(words in details for words in _HANDSHAKE):
        return CallFailed(
            f"cannot talk to spirtd at {peer}: the TLS handshake failed ({_first_line(details)}). Check "
            f"that {name}.crt is signed by the cluster CA, not expired and not revoked, and that the "
            "peer's certificate names the host you dialled (or give --peer-id)"
        )
    if code == grpc.StatusCode.UNAVAILABLE:
        return CallFailed(f"spirtd at {peer} is unavailable: {_first_line(details)}")
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallFailed(f"spirtd at {peer} did not answer within {timeout_s} s")
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return CallFailed(f"spirtd at {peer} refused the call: {details}")
    return CallFailed(f"spirtd at {peer} answered {code.name}: {details}")


def _first_line(details: str) -> str:
    """gRPC's details without the debug context it may append."""
    return details.strip().splitlines()[0] if details.strip() else "no details"


def control_stub(channel: grpc.aio.Channel) -> control_pb2_grpc.ControlStub:
    return control_pb2_grpc.ControlStub(channel)
