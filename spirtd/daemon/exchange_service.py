"""The GradientExchange service: defined in the API, not served yet. Serving
it comes with multi-peer training; until then callers get UNIMPLEMENTED
with a reason."""

from __future__ import annotations

import grpc

from spirtd.api.spirt.v1 import gradients_pb2_grpc

NOT_SERVED = "gradient exchange is not served yet"


class UnimplementedGradientExchange(gradients_pb2_grpc.GradientExchangeServicer):
    async def FetchTensor(self, request, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_SERVED)
        yield  # pragma: no cover - makes this a stream handler, as the API says

    async def PushTensor(self, request_iterator, context):
        await context.abort(grpc.StatusCode.UNIMPLEMENTED, NOT_SERVED)
