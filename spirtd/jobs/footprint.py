"""How much memory a job takes, from its parameter count: pure formulas,
checked before anything of the job is allocated.

In the store, a round holds two versions of the parameters and of the
optimizer state (version r, and r+1 being made), every minibatch's gradient
and their aggregate, all float32 vectors of n_params:

    store_bytes = 4 n_params (2 (1 + state) + minibatches_per_round + 1)

with state the optimizer's per-parameter tensors (SGD: a momentum buffer
when momentum > 0; Adam and AdamW: two moments). A worker holds the
parameters as read from the store, the model's own copy and the gradient:

    worker_bytes = 4 n_params * 3
"""

from __future__ import annotations

from spirtd.errors import LimitExceeded
from spirtd.machine import MIB
from spirtd.jobs.spec import JobSpec

FLOAT_BYTES = 4
WORKER_VECTORS = 3


def optimizer_state_vectors(spec: JobSpec) -> int:
    if spec.optimizer.name in ("adam", "adamw"):
        return 2
    return 1 if spec.optimizer.momentum > 0 else 0


def store_bytes(n_params: int, spec: JobSpec) -> int:
    vectors = 2 * (1 + optimizer_state_vectors(spec)) + spec.minibatches_per_round + 1
    return FLOAT_BYTES * n_params * vectors


def worker_bytes(n_params: int) -> int:
    return FLOAT_BYTES * n_params * WORKER_VECTORS


def _mib(n: int) -> str:
    return f"{n / MIB:,.0f} MiB"


def check_fits(n_params: int, spec: JobSpec, store_limit_bytes: int | None) -> None:
    """LimitExceeded, saying what does not fit where, if the job cannot run
    within the store's memory limit or the workers' memory limit."""
    need = store_bytes(n_params, spec)
    if store_limit_bytes is not None and need > store_limit_bytes:
        raise LimitExceeded(
            f"model {spec.model.name!r} has {n_params:,} parameters: with {spec.optimizer.name}'s state and "
            f"{spec.minibatches_per_round} gradients a round it needs {_mib(need)} in the store, whose memory "
            f"limit is {_mib(store_limit_bytes)} ([store] max_memory_mb)"
        )
    worker = worker_bytes(n_params)
    limit = spec.limits.invocation_memory_mb * MIB
    if worker > limit:
        raise LimitExceeded(
            f"model {spec.model.name!r} has {n_params:,} parameters: a worker needs at least {_mib(worker)} for "
            f"them and their gradient, over limits invocation_memory_mb = {spec.limits.invocation_memory_mb}"
        )
