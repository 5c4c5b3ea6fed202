"""A job's model as the client receives it: the streamed pieces of each
parameter tensor put together, checked against the peer's digest, as a
torch state dict (and the module it belongs to, rebuilt with spirtd's model
code)."""

from __future__ import annotations

import hashlib
import json
import math
from dataclasses import dataclass
from typing import Any

import numpy as np

from spirt_client.errors import BadReply
from spirtd.api.spirt.v1 import control_pb2


@dataclass(frozen=True, eq=False)  # tensors have no single truth value: compare digests
class Model:
    """state_dict: parameter name -> torch tensor (float32), loadable with
    module.load_state_dict(); round: the round these parameters are of;
    digest: sha256 of all of them; spec: the job's spec (a dict);
    input_shape and num_classes: what the model was built for."""

    job_id: str
    state_dict: dict[str, Any]
    round: int
    digest: str
    spec: dict[str, Any]
    input_shape: tuple[int, ...]
    num_classes: int

    @property
    def parameter_count(self) -> int:
        return sum(math.prod(t.shape) for t in self.state_dict.values())

    def module(self):
        """The torch module of the job's spec with these parameters, in eval mode."""
        from spirtd.ml.models import ModelSpec, build_model

        module = build_model(ModelSpec.from_dict(self.spec["model"]), self.input_shape, self.num_classes, 0)
        module.load_state_dict(self.state_dict)
        return module.eval()


class ModelAssembler:
    """Fed the GetModel stream's chunks in order; finish() gives the Model."""

    def __init__(self, job_id: str) -> None:
        self._job_id = job_id
        self._pieces: dict[str, bytearray] = {}
        self._shapes: dict[str, tuple[int, ...]] = {}
        self._first: control_pb2.ModelChunk | None = None

    def add(self, chunk: control_pb2.ModelChunk) -> None:
        self._first = self._first or chunk
        buf = self._pieces.setdefault(chunk.name, bytearray())
        if chunk.offset != len(buf):
            raise BadReply(f"a piece of {chunk.name} of job {self._job_id} arrived at offset {chunk.offset}, "
                           f"expected {len(buf)}")  # fmt: skip
        buf.extend(chunk.data)
        self._shapes[chunk.name] = tuple(chunk.shape)

    def finish(self) -> Model:
        import torch

        first = self._first
        if first is None:
            raise BadReply(f"the peer sent no parameters for job {self._job_id}")
        flat = b"".join(bytes(b) for b in self._pieces.values())
        if first.digest and hashlib.sha256(flat).hexdigest() != first.digest:
            raise BadReply(f"the model of job {self._job_id} does not match the digest the peer sent")
        state = {}
        for name, buf in self._pieces.items():
            array = np.frombuffer(bytes(buf), dtype=np.float32)
            if array.size != math.prod(self._shapes[name]):
                raise BadReply(f"{name} of job {self._job_id} has {array.size} values, not {self._shapes[name]}")
            state[name] = torch.from_numpy(array.reshape(self._shapes[name]).copy())
        return Model(job_id=self._job_id, state_dict=state, round=first.round, digest=first.digest,
                     spec=json.loads(first.spec_json) if first.spec_json else {},
                     input_shape=tuple(first.input_shape), num_classes=first.num_classes)  # fmt: skip
