"""The standard gRPC health service (grpc.health.v1.Health), so that
Kubernetes' gRPC probes, grpc_health_probe and `spirtctl health` can ask a
peer whether it serves. It sits behind the same mutual TLS and guard as
every other service.

    health = Health(["spirt.v1.Control", ...])
    await health.starting()      # before the server starts: NOT_SERVING
    health.register(server)
    await health.ready()         # the daemon is up: SERVING
    await health.shutting_down() # from then on NOT_SERVING, for good

The overall status is the empty service name; each served service has the
same status under its own name (any other name: NOT_FOUND).
"""

from __future__ import annotations

import enum
from collections.abc import Sequence

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_health.v1.health import aio as health_aio

HEALTH_SERVICE = health_pb2.DESCRIPTOR.services_by_name["Health"].full_name
OVERALL = ""


class HealthPhase(enum.Enum):
    STARTING = "starting"  # NOT_SERVING: Control may answer, the peer is not up yet
    SERVING = "serving"
    SHUTTING_DOWN = "shutting_down"  # NOT_SERVING, and it stays so


_STATUS = {
    HealthPhase.STARTING: health_pb2.HealthCheckResponse.NOT_SERVING,
    HealthPhase.SERVING: health_pb2.HealthCheckResponse.SERVING,
    HealthPhase.SHUTTING_DOWN: health_pb2.HealthCheckResponse.NOT_SERVING,
}
_NEXT = {
    HealthPhase.STARTING: {HealthPhase.SERVING, HealthPhase.SHUTTING_DOWN},
    HealthPhase.SERVING: {HealthPhase.SHUTTING_DOWN},
    HealthPhase.SHUTTING_DOWN: set(),
}


class Health:
    """Owns the served status; the reference servicer answers Check and
    Watch (watchers hear every change)."""

    def __init__(self, services: Sequence[str]) -> None:
        self._names = (OVERALL, *services)
        self._servicer = health_aio.HealthServicer()
        self.phase = HealthPhase.STARTING

    async def starting(self) -> None:
        """Sets every name NOT_SERVING (the reference servicer starts with
        the overall status SERVING): call it before the server starts."""
        await self._publish()

    def register(self, server: grpc.aio.Server) -> None:
        health_pb2_grpc.add_HealthServicer_to_server(self._servicer, server)

    async def ready(self) -> None:
        await self._enter(HealthPhase.SERVING)

    async def shutting_down(self) -> None:
        """NOT_SERVING from now on; idempotent."""
        await self._enter(HealthPhase.SHUTTING_DOWN)

    async def _enter(self, phase: HealthPhase) -> None:
        if phase is self.phase:
            return
        if phase not in _NEXT[self.phase]:
            raise RuntimeError(f"health cannot go from {self.phase.value} to {phase.value}")
        self.phase = phase
        await self._publish()

    async def _publish(self) -> None:
        for name in self._names:
            await self._servicer.set(name, _STATUS[self.phase])
