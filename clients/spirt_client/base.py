"""What the synchronous and the asyncio client share: whom they call, as
whom, how long a call may take, and a failed call in words."""

from __future__ import annotations

import os
from pathlib import Path

import grpc

from spirt_client.calls import Ask
from spirt_client.connection import DEFAULT_NAME, DEFAULT_TIMEOUT_S, Target, explain
from spirt_client.errors import CallFailed, ClientClosed


class ClientBase:
    """address: HOST:PORT of a running spirtd; certs_dir: the cluster CA's
    ca.crt and this client's NAME.crt and NAME.key (name: "client" unless
    given; an operator's certificate may act on every job); peer_id: the id
    the peer's certificate must carry, when dialled at an address it does
    not name; insecure: plaintext, for a peer run with --insecure;
    timeout_s: how long each call may take (a submit at least
    calls.SUBMIT_TIMEOUT_S: every member records it; not a watch of a job or of the
    members, which lasts as long as they do)."""

    def __init__(self, address: str, certs_dir: str | os.PathLike | None = None, *, name: str = DEFAULT_NAME,
                 peer_id: str | None = None, insecure: bool = False,
                 timeout_s: float = DEFAULT_TIMEOUT_S) -> None:  # fmt: skip
        self.target = Target(address, Path(certs_dir) if certs_dir is not None else None, name, peer_id, insecure)
        self.timeout_s = timeout_s
        self._closed = False

    def _started(self, start):
        """start() (a call on the channel), or ClientClosed once the client is
        closed: grpc's own error for a closed channel (a ValueError, or
        UsageError with asyncio) says nothing of whose channel."""
        if self._closed:
            raise self._closed_error()
        try:
            return start()
        except Exception:
            if self._closed:  # closed by another thread meanwhile (a watch running while the client closes)
                raise self._closed_error() from None
            raise

    def _closed_error(self) -> ClientClosed:
        return ClientClosed(f"the client of spirtd at {self.target.address} is closed")

    @property
    def address(self) -> str:
        return self.target.address

    def _deadline(self, ask: Ask, timeout_s: float | None = None) -> float | None:
        """timeout_s if given, else the client's for a bounded call (at least
        the call's own least), else none."""
        if timeout_s is not None:
            return timeout_s
        return max(self.timeout_s, ask.min_timeout_s) if ask.bounded else None

    def _failed(self, exc: grpc.RpcError, timeout_s: float | None) -> CallFailed:
        return explain(exc, self.target, timeout_s)

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.target.address!r}, name={self.target.name!r})"
