"""gRPC server reflection (grpc.reflection.v1alpha), so that grpcurl can
list and describe the peer's services and call them without the .proto
files: behind the same mutual TLS and guard as every other service."""

from __future__ import annotations

from collections.abc import Sequence

import grpc
from grpc_reflection.v1alpha import reflection

REFLECTION_SERVICE = reflection.SERVICE_NAME


def add_reflection(server: grpc.aio.Server, services: Sequence[str]) -> None:
    """Serves reflection of `services` (full names; their descriptors must be
    in protobuf's default pool, as generated modules put them) and of itself."""
    reflection.enable_server_reflection([*services, REFLECTION_SERVICE], server)
