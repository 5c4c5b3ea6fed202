"""`spirtctl health`: the peer's standard gRPC health check
(grpc.health.v1.Health/Check), for people and for probes: exit 0 only when
the peer answers SERVING."""

from __future__ import annotations

import argparse
import json

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from spirtctl.connection import CallFailed

EXIT_SERVING, EXIT_NOT_SERVING = 0, 1


async def check(channel: grpc.aio.Channel, args: argparse.Namespace) -> int:
    stub = health_pb2_grpc.HealthStub(channel)
    try:
        reply = await stub.Check(health_pb2.HealthCheckRequest(service=args.service), timeout=args.timeout)
    except grpc.aio.AioRpcError as exc:
        if exc.code() == grpc.StatusCode.NOT_FOUND:
            raise CallFailed(f"spirtd at {args.peer} serves no service {args.service!r}; leave out --service for "
                             "the peer as a whole, or name one of its services (spirt.v1.Control, ...)") from None
        raise
    status = health_pb2.HealthCheckResponse.ServingStatus.Name(reply.status)
    if args.json:
        print(json.dumps({"peer": args.peer, "service": args.service, "status": status}))
    else:
        print(f"{args.peer}{' ' + args.service if args.service else ''}: {status}")
    return EXIT_SERVING if reply.status == health_pb2.HealthCheckResponse.SERVING else EXIT_NOT_SERVING
