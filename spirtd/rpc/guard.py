"""Who may call what, checked on every call after the TLS handshake.

The handshake (gRPC's, with require_client_auth) already refused callers
without a certificate from the cluster CA. GuardInterceptor then, for every
call: takes the caller's identity from its certificate, refuses it if the
certificate is revoked, and refuses client certificates anywhere but
Control and the standard health and reflection services. Handlers check that a message's claimed sender is the caller
(check_sender). Every refusal is a clear status for the caller, a log line
(at a bounded rate) and a counter.

Messages over max_message_bytes are refused by gRPC itself (its server
limit is exactly that, so every caller hears one number). gRPC gives a
handler no word of it; so every unary-request method is served here as a
request stream, and a call whose one message never arrived is logged and
counted as oversized. A request-streaming handler sees a stream that just
ends early: it must check that what it received is complete.
"""

from __future__ import annotations

import contextvars
import inspect
import logging
import secrets
import sys
from typing import Any, AsyncIterator, Callable

import grpc
from cryptography import x509
from google.protobuf.message import DecodeError

from spirtd.clock import SystemClock
from spirtd.errors import ConfigError, SecurityError
from spirtd.rpc.counters import Counters
from spirtd.rpc.health import HEALTH_SERVICE
from spirtd.rpc.reflection import REFLECTION_SERVICE
from spirtd.rpc.refusals import RefusalLog
from spirtd.security.identity import Identity, Role, identity_from_pem
from spirtd.security.revocation import RevocationList

CONTROL_SERVICE = "spirt.v1.Control"
# What clients and operators may call (peers call anything): Control, and
# the read-only standard services that say whether it serves and what it is.
CLIENT_SERVICES = frozenset({CONTROL_SERVICE, HEALTH_SERVICE, REFLECTION_SERVICE})
# A revoked caller is told so with the revocation list itself (signed by the
# CA, so it can check it), and stops instead of thinking the others dead.
CRL_TRAILER = "spirt-crl-bin"
DEFAULT_REFUSAL_INTERVAL_S = 10.0
DEFAULT_REFUSAL_BURST = 5
_caller: contextvars.ContextVar[Identity | None] = contextvars.ContextVar("spirt_caller", default=None)
# What sending a status raises once the call is gone. grpc.aio has no public
# name for it: should a grpc release drop this one, any error of a call
# whose caller left is taken for the hang-up (as before there was this check).
try:
    from grpc._cython.cygrpc import ExecuteBatchError as _STATUS_NOT_SENT
except ImportError:  # pragma: no cover - grpc's private layout changed
    _STATUS_NOT_SENT = Exception

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
        refusals: RefusalLog | None = None,
    ) -> None:
        if not insecure and ca is None:
            raise ConfigError("a CA certificate is needed unless insecure")
        self._ca = ca
        self._revocations = revocations
        self._counters = counters
        self._refusals = refusals or RefusalLog(counters, SystemClock(), interval_s=DEFAULT_REFUSAL_INTERVAL_S,
                                                burst=DEFAULT_REFUSAL_BURST)  # fmt: skip
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
        """Counts, logs (at a bounded rate) and aborts the call (raises)."""
        self._refusals.refused(reason, context.peer(), f"refused a call from {context.peer()}: {text}")
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
            context.set_trailing_metadata(((CRL_TRAILER, self._revocations.der),))  # type: ignore[union-attr]
            await self.refuse(
                context, grpc.StatusCode.UNAUTHENTICATED, "revoked",
                f"the certificate of {identity.name!r} was revoked by the cluster CA "
                f"(revocation list {self._revocations.number})",  # type: ignore[union-attr]
            )
        self.serials[identity.name] = identity.serial
        if identity.role is not Role.PEER and _service_of(method) not in CLIENT_SERVICES:
            await self.refuse(
                context, grpc.StatusCode.PERMISSION_DENIED, "role",
                f"{identity} may call only the Control service (and health, reflection), not {_service_of(method)}",
            )
        return identity

    async def refuse_missing_message(self, context: grpc.aio.ServicerContext) -> None:
        """A unary call whose message never arrived: gRPC refused it for its
        size (and told the caller so), or the caller sent none."""
        await self.refuse(
            context, grpc.StatusCode.RESOURCE_EXHAUSTED, "oversized",
            f"its message did not arrive: over the limit of {self.max_message_bytes} bytes "
            "(max_message_bytes), or none was sent",
        )

    async def one_message(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        """The single message of a unary call, read from its request stream."""
        message, count = None, 0
        async for item in self.readable(requests, context):
            message, count = item, count + 1
        if count == 0:
            await self.refuse_missing_message(context)
        if count > 1:
            await self.refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed",
                              f"a unary call carried {count} messages")  # fmt: skip
        return message

    async def check_sender(self, claimed: str, context: grpc.aio.ServicerContext) -> None:
        """Refuses a message whose claimed sender is not the caller."""
        identity = caller()
        if identity is not None and claimed != identity.name:
            await self.refuse(
                context, grpc.StatusCode.PERMISSION_DENIED, "spoofed_sender",
                f"the message says it is from {claimed!r} but the caller's certificate is "
                f"{identity.name!r}",
            )


    async def readable(self, requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> AsyncIterator[Any]:
        """The request messages; one that cannot be decoded (not protobuf,
        a string that is not UTF-8) is refused as malformed."""
        try:
            async for item in requests:
                yield item
        except DecodeError as exc:
            await self.refuse(context, grpc.StatusCode.INVALID_ARGUMENT, "malformed",
                              f"the request is not a valid message: {exc}")  # fmt: skip

    async def internal_error(self, context: grpc.aio.ServicerContext, method: str) -> None:
        """Logs the exception being handled, with its traceback, and aborts
        the call with a short INTERNAL status (never the traceback). The
        failure to send a status to a caller that hung up meanwhile is no
        bug, and has nobody to tell; anything else is, even when a status
        went out already (then there is nothing more to send)."""
        if isinstance(sys.exc_info()[1], _STATUS_NOT_SENT) and (context.cancelled() or context.done()):
            _log.debug("a call to %s ended as its caller hung up (%s)", method, sys.exc_info()[1],
                       extra={"peer": context.peer()})  # fmt: skip
            return
        mark = secrets.token_hex(4)
        _log.exception("internal error %s in %s from %s", mark, method, context.peer(),
                       extra={"peer": context.peer(), "error_id": mark})  # fmt: skip
        if not context.done():
            await context.abort(grpc.StatusCode.INTERNAL,
                                f"an internal error on the peer (error {mark} in its log)")  # fmt: skip


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
    """The handler behind the guard; unary requests are read as a stream
    (see the module doc), so every wrapped method takes a request stream."""

    async def enter(context: grpc.aio.ServicerContext) -> contextvars.Token:
        return _caller.set(await guard.admit(method, context))

    async def arg(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        if handler.request_streaming:
            return guard.readable(requests, context)
        return await guard.one_message(requests, context)

    if handler.response_streaming:
        inner = handler.unary_stream or handler.stream_stream

        async def streaming(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext):
            token = await enter(context)
            try:
                result = inner(await arg(requests, context), context)
                if hasattr(result, "__aiter__"):
                    async for item in result:
                        yield item
                else:
                    await _maybe_await(result)
            except grpc.aio.AbortError:
                raise
            except Exception:  # noqa: BLE001 - the RPC boundary: a bug must not reach the caller as a traceback
                await guard.internal_error(context, method)
            finally:
                _caller.reset(token)

        return grpc.stream_stream_rpc_method_handler(streaming, request_deserializer=handler.request_deserializer,
                                                     response_serializer=handler.response_serializer)  # fmt: skip

    inner = handler.unary_unary or handler.stream_unary

    async def single(requests: AsyncIterator[Any], context: grpc.aio.ServicerContext) -> Any:
        token = await enter(context)
        try:
            return await _maybe_await(inner(await arg(requests, context), context))
        except grpc.aio.AbortError:
            raise
        except Exception:  # noqa: BLE001 - the RPC boundary: a bug must not reach the caller as a traceback
            await guard.internal_error(context, method)
        finally:
            _caller.reset(token)

    return grpc.stream_unary_rpc_method_handler(single, request_deserializer=handler.request_deserializer,
                                                response_serializer=handler.response_serializer)  # fmt: skip
