"""`spirtctl health`: the peer's standard gRPC health check
(grpc.health.v1.Health/Check), for people and for probes: exit 0 only when
the peer answers SERVING."""

from __future__ import annotations

import argparse
import json

from spirt_client import AsyncClient, NotFound
from spirt_client.errors import CallFailed

EXIT_SERVING, EXIT_NOT_SERVING = 0, 1


async def check(client: AsyncClient, args: argparse.Namespace) -> int:
    try:
        status = await client.health(args.service)
    except NotFound:
        raise CallFailed(f"spirtd at {args.peer} serves no service {args.service!r}; leave out --service for "
                         "the peer as a whole, or name one of its services (spirt.v1.Control, ...)",
                         address=args.peer) from None  # fmt: skip
    if args.json:
        print(json.dumps({"peer": args.peer, "service": args.service, "status": status}))
    else:
        print(f"{args.peer}{' ' + args.service if args.service else ''}: {status}")
    return EXIT_SERVING if status == "SERVING" else EXIT_NOT_SERVING
