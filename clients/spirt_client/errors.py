"""What a client call raises, in one tree.

    SpirtError                 (spirtd.errors: the base of every error spirtd raises)
    ├── ConfigError            the certs dir lacks a file, or a key is readable by others
    ├── SecurityError          the client's own certificate cannot be used (not this CA's,
    │                          expired, revoked, another name): found before any call
    └── ClientError            a call to a peer, or what came back, failed
        ├── CallFailed         the call failed; .address, .code (a grpc.StatusCode or
        │   │                  None) and .details (the server's own words) say how
        │   ├── PeerUnreachable    nothing answers at the address (connection refused,
        │   │                      no route, a name that does not resolve)
        │   ├── HandshakeFailed    the TLS handshake failed: the peer's certificate is not
        │   │                      trusted here, names another host, or the peer refused
        │   │                      this client's certificate
        │   ├── CallTimedOut       no answer within the client's timeout_s
        │   ├── NotPermitted       the peer refused the call (not the job's owner, a
        │   │                      revoked certificate, a role that may not ask it)
        │   ├── NotFound           no such job on that peer
        │   └── InvalidRequest     the peer refused what was asked (a job spec: its words
        │                          name the field and the bound)
        ├── BadReply           what the peer sent cannot be used (a model whose bytes do
        │                      not match its digest)
        ├── ClientClosed       the client was closed (a call made, or a watch still
        │                      running, after close())
        └── MissingDependency  an optional package (pandas, matplotlib) is not installed

Every message names the peer's address and what failed; a refusal carries
the server's message unchanged in .details.
"""

from __future__ import annotations

import grpc

from spirtd.errors import SpirtError


class ClientError(SpirtError):
    """A call to a peer, or what came back, failed."""


class CallFailed(ClientError):
    """A call failed; the message says why and what to check."""

    def __init__(self, message: str, *, address: str, code: grpc.StatusCode | None = None, details: str = "") -> None:
        super().__init__(message)
        self.address = address
        self.code = code
        self.details = details


class PeerUnreachable(CallFailed):
    """Nothing answers at the address: no TLS handshake took place."""


class HandshakeFailed(CallFailed):
    """The TLS handshake failed (a certificate problem on one side or the other)."""


class CallTimedOut(CallFailed):
    """No answer within the client's timeout."""


class NotPermitted(CallFailed):
    """The peer refused the call for who the caller is."""


class NotFound(CallFailed):
    """The peer has no such job."""


class InvalidRequest(CallFailed):
    """The peer refused what was asked; its words say what is wrong."""


class BadReply(ClientError):
    """What the peer sent cannot be used."""


class ClientClosed(ClientError):
    """The client was closed before or while the call was made."""


class MissingDependency(ClientError):
    """An optional package is not installed."""


def require(module: str, purpose: str):
    """Imports an optional package, or says how to install it."""
    import importlib

    try:
        return importlib.import_module(module)
    except ImportError:
        package = module.split(".")[0]
        raise MissingDependency(f"{purpose} needs {package}, which is not installed: pip install {package}") from None
