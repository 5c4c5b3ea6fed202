"""The tensor store: tensors in the node's colocated Redis, and the tensor
work (aggregation, optimizer steps, digests) done there. See api.py."""

from spirtd.store.api import DType, TensorMeta, TensorStore, TensorWriter
from spirtd.store.connect import connect, detect_backend

__all__ = ["DType", "TensorMeta", "TensorStore", "TensorWriter", "connect", "detect_backend"]
