"""Who may call what, checked on every call after the TLS handshake.

The handshake (gRPC's, with require_client_auth) already refused callers
without a certificate from the cluster CA. GuardInterceptor then, for every
call: takes the caller's identity from its certificate, refuses it if the
certificate is revoked, refuses client certificates anywhere but Control,
and refuses messages over the size limit. Handlers check that a message's
claimed sender is the caller (check_sender). Every refusal is a clear
status for the caller, a log line and a counter.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
from typing import Any, AsyncIterator, Callable

import grpc
from cryptography import x509

from spirtd.errors import SecurityError
from spirtd.rpc.counters import Counters
from spirtd.security.identity import Identity, Role, identity_from_pem
from spirtd.security.revocation import RevocationList

CONTROL_PREFIX = "/spirt.v1.Control/"
_caller: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("spirt_caller", default=None)
_log = logging.getLogger("spirtd.security")


def caller() -> Identity | None:
    """The identity of the peer or client whose call is being handled (None
    in --insecure mode)."""
    return _caller.get()


def _service_of(method: str) -> str:
    return method.rsplit("/", 1)[0].lstrip("/")


class Guard:
    """Owns the revocation list in force and decides every call."""

    def __init__(
        self,
        ca: x509.Certificate | None,
        revocations: RevocationList | None,
        counters: Counters,
        *,
        max_message_bytes: int,
        insecure: bool = False,
    ) -> None:
        if not insecure and ca is None:
            raise ValueError("a CA certificate is needed unless insecure")
        self._ca = ca
        self._revocations = revocations
        self._counters = counters
        self.max_message_bytes = max_message_bytes
        self.insecure = insecure
        # Certificate serial of every caller seen, by name: what a newly
        # adopted revocation list is checked against to expel members.
        self.serials: dict[str, int] = {}
        self.on_revoked_caller: Callable[[Identity], None] | None = None

    @property
    def revocations(self) -> RevocationList | None:
        return self._revocations

    def adopt(self, crl: RevocationList) -> bool:
        """Takes a revocation list if the CA signed it and it is newer than
        the one in force. Returns True if it was taken."""
        if self._ca is None or not crl.newer_than(self._revocations):
            return False
        crl.verify(self._ca)
        self._revocations = crl
        _log.warning(
            "adopted revocation list %d: %d certificate(s) revoked", crl.number, len(crl.revoked),
            extra={"crl_number": crl.number, "revoked": len(crl.revoked)},
        )
        return True

    def is_revoked(self, identity: Identity) -> bool:
        return self._revocations is not None and self._revocations.is_revoked(identity.serial)

    async def refuse(
        self, context: grpc.aio.ServicerContext, code: grpc.StatusCode, reason: str, text: str
    ) -> None:
        """Counts, logs and aborts the call (raises)."""
        self._counters.inc(f"refused.{reason}")
        _log.warning("refused a call from %s: %s", context.peer(), text,
                     extra={"peer": context.peer(), "reason": reason})  # fmt: skip
        await context.abort(code, text)

    async def admit(self, method: str, context: grpc.aio.ServicerContext) -> Identity | None:
        """The caller's identity, or an aborted call."""
        if self.insecure:
            return None
        pems = context.auth_context().get("x509_pem_cert")
        if not pems:
            await self.refuse(context, grpc.StatusCode.UNAUTHENTICATED, "no_certificate",
                              "the caller presented no certificate")  # fmt: skip
        try:
            identity = identity_from_pem(pems[0])
        except SecurityError as exc:
            await self.refuse(context, grpc.StatusCode.UNAUTHENTICATED, "bad_certificate", str(exc))
        if self.is_revoked(identity):
            if self.on_revoked_caller is not None:
                self.on_revoked_caller(identity)
            await self.refuse(
                context, grpc.StatusCode.UNAUTHENTICATED, "revoked",
                f"the certificate of {identity.name!r} was revoked by the cluster CA "
                f"(revocation list {self._revocations.number})",  # type: ignore[union-attr]
            )
        self.serials[identity.name] = identity.serial
        if identity.role is not Role.PEER and not method.startswith(CONTROL_PREFIX):
            await self.refuse(
                context, grpc.StatusCode.PERMISSION_DENIED, "role",
                f"{identity} may call only the Control service, not {_service_of(method)}",
            )
        return identity

    async def check_size(self, message: Any, context: grpc.aio.ServicerContext) -> None:
        size = message.ByteSize() if hasattr(message, "ByteSize") else len(message)
        if size > self.max_message_bytes:
            await self.refuse(
                context, grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized",
                f"a message of {size} bytes is over the limit of {self.max_message_bytes} bytes",
            )

    async def check_sender(self, claimed: str, context: grpc.aio.ServicerContext) -> None:
        """Refuses a message whose claimed sender is not the caller."""
        identity = caller()
        if identity is not None and claimed != identity.name:
            await self.refuse(
                context, grpc.StatusCode.PERMISSION_DENIED, "spoofed_sender",
                f"the message says it is from {claimed!r} but the caller's certificate is "
                f"{identity.name!r}",
            )


async def _maybe_await(value: Any) -> Any:
    return await value if inspect.isawaitable(value) else value


class GuardInterceptor(grpc.aio.ServerInterceptor):
    """Runs Guard.admit (and the size check) before every handler, and makes
    the caller's identity available to it through caller()."""

    def __init__(self, guard: Guard) -> None:
        self._guard = guard

    async def intercept_service(
        self, continuation: Callable[..., Any], details: grpc.HandlerCallDetails
    ) -> grpc.RpcMethodHandler | None:
        handler = await continuation(details)
        if handler is None:
            return None
        return _wrap(handler, details.method, self._guard)


def _wrap(handler: grpc.RpcMethodHandler, method: str, guard: Guard) -> grpc.RpcMethodHandler:
    async def checked(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext):
        async for message in requests:
            await guard.check_size(message, context)
            yield message

    async def enter(request: Any, context: grpc.aio.ServicerContext) -> contextvars.Token:
        identity = await guard.admit(method, context)
        if not handler.request_streaming:
            await guard.check_size(request, context)
        return _caller.set(identity)

    def arg(request: Any, context: grpc.aio.ServicerContext) -> Any:
        return checked(request, context) if handler.request_streaming else request

    if handler.response_streaming:
        inner = handler.unary_stream or handler.stream_stream

        async def streaming(request: Any, context: grpc.aio.ServicerContext):
            token = await enter(request, context)
            try:
                result = inner(arg(request, context), context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    await _maybe_await(result)
            finally:
                _caller.reset(token)

        make = grpc.stream_stream_rpc_method_handler if handler.request_streaming else grpc.unary_stream_rpc_method_handler
        return make(streaming, request_deserializer=handler.request_deserializer,
                    response_serializer=handler.response_serializer)  # fmt: skip

    inner = handler.unary_unary or handler.stream_unary

    async def single(request: Any, context: grpc.aio.ServicerContext) -> Any:
        token = await enter(request, context)
        try:
            return await _maybe_await(inner(arg(request, context), context))
        finally:
            _caller.reset(token)

    make = grpc.stream_unary_rpc_method_handler if handler.request_streaming else grpc.unary_unary_rpc_method_handler
    return make(single, request_deserializer=handler.request_deserializer,
                response_serializer=handler.response_serializer)  # fmt: skip
