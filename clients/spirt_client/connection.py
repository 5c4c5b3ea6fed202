"""A client's mutual-TLS channel to one peer (grpc's synchronous or asyncio
flavour), and a failed call told in words."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import grpc

from spirt_client.errors import (
    CallFailed,
    CallTimedOut,
    HandshakeFailed,
    InvalidRequest,
    NotFound,
    NotPermitted,
    PeerUnreachable,
)
from spirtd.rpc.tls import channel_credentials, verify_as
from spirtd.security.certsdir import CertsDir

DEFAULT_NAME = "client"
DEFAULT_TIMEOUT_S = 10.0


@dataclass(frozen=True)
class Target:
    """Which peer to call and as whom: the certificate NAME from certs_dir
    (NAME.crt, NAME.key, signed by the cluster CA in ca.crt). peer_id: the
    name the peer's certificate must carry (default: the host dialled).
    insecure: plaintext, for a peer run with --insecure."""

    address: str
    certs_dir: Path | None = None
    name: str = DEFAULT_NAME
    peer_id: str | None = None
    insecure: bool = False

    def _secure(self) -> tuple[grpc.ChannelCredentials, list[tuple[str, str]]]:
        if self.certs_dir is None:
            raise ValueError(f"calling {self.address} needs a certs dir (or insecure=True for a peer run with --insecure)")
        certs = CertsDir(self.certs_dir)  # ConfigError or SecurityError, naming the file, before any call
        return channel_credentials(certs.credentials(self.name), certs.ca_pem), verify_as(self.peer_id)

    def sync_channel(self) -> grpc.Channel:
        if self.insecure:
            return grpc.insecure_channel(self.address)
        creds, options = self._secure()
        return grpc.secure_channel(self.address, creds, options=options)

    def aio_channel(self) -> grpc.aio.Channel:
        if self.insecure:
            return grpc.aio.insecure_channel(self.address)
        creds, options = self._secure()
        return grpc.aio.secure_channel(self.address, creds, options=options)


# What gRPC's details say when nothing listens, or the name does not resolve:
# no TLS handshake took place, so advice about certificates would mislead.
_NOT_LISTENING = ("Connection refused", "No route to host", "Network is unreachable", "DNS resolution failed",
                  "Name or service not known", "errors resolving", "Domain name not found")  # fmt: skip
# This client did not trust the peer's certificate.
_UNTRUSTED = ("CERTIFICATE_VERIFY_FAILED",)
_OTHER_HOST = ("Hostname Verification", "Peer name")
# The peer hung up during the handshake: it refused this client's certificate.
_HUNG_UP = ("Socket closed", "Connection reset")
_HANDSHAKE = ("handshake", "SSL", "TLS", "certificate")
_REFUSALS = {
    grpc.StatusCode.PERMISSION_DENIED: NotPermitted,
    grpc.StatusCode.UNAUTHENTICATED: NotPermitted,
    grpc.StatusCode.NOT_FOUND: NotFound,
    grpc.StatusCode.INVALID_ARGUMENT: InvalidRequest,
}


def explain(exc: grpc.RpcError, target: Target, timeout_s: float | None) -> CallFailed:
    """A failed call (grpc.RpcError, sync or asyncio) as the CallFailed that
    says what failed and what to check."""
    code, details = exc.code(), exc.details() or ""  # type: ignore[attr-defined]
    peer, name, first = target.address, target.name, _first_line(details)
    where = {"address": peer, "code": code, "details": details}
    if code == grpc.StatusCode.UNAVAILABLE and _says(details, _NOT_LISTENING):
        return PeerUnreachable(f"cannot reach spirtd at {peer}: nothing answers there ({first}); "
                               "is it running, and is that its --listen address?", **where)  # fmt: skip
    if code == grpc.StatusCode.UNAVAILABLE and _says(details, _UNTRUSTED):
        return HandshakeFailed(
            f"cannot talk to spirtd at {peer}: the TLS handshake failed, the peer's certificate is not trusted "
            f"({first}). Is it signed by the cluster CA in {target.certs_dir}/ca.crt? (a certs dir of another "
            "cluster, or a peer of another CA)", **where)  # fmt: skip
    if code == grpc.StatusCode.UNAVAILABLE and _says(details, _OTHER_HOST):
        return HandshakeFailed(
            f"cannot talk to spirtd at {peer}: the TLS handshake failed, the peer's certificate does not name "
            f"the host dialled ({first}); dial a name or address its certificate carries, or give its peer id "
            "(peer_id=..., spirtctl --peer-id)", **where)  # fmt: skip
    if code == grpc.StatusCode.UNAVAILABLE and _says(details, _HUNG_UP + _HANDSHAKE):
        return HandshakeFailed(
            f"cannot talk to spirtd at {peer}: the TLS handshake failed, the peer hung up ({first}). It refuses "
            f"{name}.crt if that is not signed by the cluster CA, expired or revoked (its log says which); or it "
            "does not speak TLS there", **where)  # fmt: skip
    if code == grpc.StatusCode.UNAVAILABLE:
        return CallFailed(f"spirtd at {peer} is unavailable: {first}", **where)
    if code == grpc.StatusCode.DEADLINE_EXCEEDED:
        return CallTimedOut(f"spirtd at {peer} did not answer within {timeout_s} s (the connection, its TLS "
                            "handshake or the call did not complete)", **where)  # fmt: skip
    if code in (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.UNAUTHENTICATED):
        return NotPermitted(f"spirtd at {peer} refused the call: {details}", **where)
    kind = _REFUSALS.get(code, CallFailed)
    return kind(f"spirtd at {peer} answered {code.name}: {details}", **where)


def _says(details: str, words: tuple[str, ...]) -> bool:
    return any(w in details for w in words)


def _first_line(details: str) -> str:
    """gRPC's details without the debug context it may append."""
    return details.strip().splitlines()[0] if details.strip() else "no details"
