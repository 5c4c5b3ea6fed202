"""What a worker process imports as its handler (compute.HANDLER): the
training computation, with torch, the models and the datasets loaded
before the worker says it is ready, so that a warm worker's first
minibatch costs what every other one does (the pool's start_timeout_s
covers the import). The daemon itself imports none of this until it needs
it, so that it starts fast."""

import torch  # noqa: F401

from spirtd.train import datasets, models  # noqa: F401
from spirtd.train.compute import handle

__all__ = ["handle"]
