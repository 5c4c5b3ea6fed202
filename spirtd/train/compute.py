"""The training computation: what a worker invocation does, and what the
daemon needs to set a job up.

Worker side, `handle(request)` (run by spirtd.train.worker_main):
  kind "gradient": read the parameters (version `params_key`) from the store,
      load the minibatch (epoch, index), forward + backward, write the flat
      gradient to `out_key` and its loss and sample count beside it (a hash
      at stats_key(out_key)), in one transaction; reply the same numbers.
  kind "evaluate": loss and accuracy of the parameters on a split.
Nothing it keeps between invocations changes a result: the store client,
loaded datasets and model skeletons are cached by what they were built from,
and the parameters are loaded into the skeleton on every invocation.

Daemon side: describe(spec) checks a spec against its data and model;
initial_parameters(spec) makes version 0; layout(spec) names the parts of
the flat vector; training(...) bundles them with a worker pool for the
JobManager.
"""

from __future__ import annotations

import os
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np

from spirtd.clock import Clock
from spirtd.errors import ConfigError
from spirtd.train import chaos
from spirtd.train.runner import DataShape
from spirtd.train.spec import JobSpec

# The workers' entry point (gradient_worker imports torch before a worker is ready).
HANDLER = "spirtd.train.gradient_worker:handle"
# How a worker finds the store: the colocated one's socket and password
# file, or the URL of an external one.
SOCKET_ENV = "SPIRTD_STORE_SOCKET"
PASSWORD_FILE_ENV = "SPIRTD_STORE_PASSWORD_FILE"
URL_ENV = "SPIRTD_STORE_URL"
EVAL_BATCH = 1024
CACHE_SIZE = 4
# One thread per worker: results are bit-identical whatever the machine, and
# parallelism comes from running several workers.
WORKER_ENV = {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}


# ---- shared: what a spec's model and data are ----

@lru_cache(maxsize=CACHE_SIZE)
def _dataset(dataset_json: str, seed: int):
    import json

    from spirtd.train.datasets import DatasetSpec, load_dataset

    return load_dataset(DatasetSpec.from_dict(json.loads(dataset_json)), seed)


def dataset_of(spec: dict[str, Any]):
    import json

    return _dataset(json.dumps(spec["dataset"], sort_keys=True), int(spec["seed"]))


@lru_cache(maxsize=CACHE_SIZE)
def _skeleton(model_json: str, input_shape: tuple[int, ...], num_classes: int, seed: int):
    import json

    from spirtd.train.models import ModelSpec, build_model

    return build_model(ModelSpec.from_dict(json.loads(model_json)), input_shape, num_classes, seed)


def model_of(spec: dict[str, Any], data) -> Any:
    import json

    return _skeleton(json.dumps(spec["model"], sort_keys=True), tuple(data.input_shape), data.num_classes,
                     int(spec["seed"]))  # fmt: skip


# ---- worker side ----

def stats_key(gradient_key: str) -> str:
    """Where a gradient's loss and sample count are kept, beside it."""
    return f"{gradient_key}:stats"


def store_env(socket_path: Path | None = None, password_file: Path | None = None,
              url: str | None = None) -> dict[str, str]:  # fmt: skip
    """The environment that tells workers where the store is."""
    if url is not None:
        return {URL_ENV: url}
    return {SOCKET_ENV: str(socket_path), PASSWORD_FILE_ENV: str(password_file)}


@lru_cache(maxsize=1)
def _store():
    import redis

    url = os.environ.get(URL_ENV)
    if url:
        return redis.Redis.from_url(url, socket_timeout=None)
    socket = os.environ.get(SOCKET_ENV)
    password_file = os.environ.get(PASSWORD_FILE_ENV)
    if not socket or not password_file:
        raise ConfigError(f"a worker needs {URL_ENV}, or {SOCKET_ENV} and {PASSWORD_FILE_ENV}, to reach the store")
    password = Path(password_file).read_text().strip()
    return redis.Redis(unix_socket_path=socket, password=password, socket_timeout=None)


def _read_parameters(key: str) -> np.ndarray:
    import redis

    try:
        blob = _store().execute_command("AI.TENSORGET", key, "BLOB")
    except redis.ResponseError as exc:
        raise KeyError(f"parameters {key} are not in the store ({exc}); a newer round may have replaced them") from exc
    return np.frombuffer(blob, dtype=np.float32)


def handle(request: dict[str, Any]) -> dict[str, Any]:
    import torch

    torch.set_num_threads(1)
    chaos.apply(request)
    spec = request["spec"]
    data = dataset_of(spec)
    model = model_of(spec, data)
    from spirtd.train.models import flatten_gradients, load_flat_parameters

    load_flat_parameters(model, _read_parameters(request["params_key"]))
    if request["kind"] == "gradient":
        x, y = data.minibatch(int(spec["batch_size"]), int(request["epoch"]), int(request["index"]))
        model.train()
        model.zero_grad(set_to_none=True)
        loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(np.array(x))), torch.from_numpy(np.array(y)))
        loss.backward()
        grad = flatten_gradients(model)
        result = {"loss": float(loss.item()), "samples": int(len(y))}
        pipe = _store().pipeline(transaction=True)  # the gradient and its stats land together
        pipe.execute_command("AI.TENSORSET", request["out_key"], "FLOAT", grad.size, "BLOB", memoryview(grad))
        pipe.hset(stats_key(request["out_key"]), mapping=result)
        pipe.execute()
        return result
    if request["kind"] == "evaluate":
        return _evaluate(model, data, request["split"])
    raise ValueError(f"unknown invocation kind {request['kind']!r}")


def _evaluate(model, data, split: str) -> dict[str, Any]:
    import torch

    x, y = (data.val_x, data.val_y) if split == "val" else (data.test_x, data.test_y)
    if len(y) == 0:
        x, y = data.train_x, data.train_y  # no such split: say how it does on what it learned
    model.eval()
    total_loss, correct = 0.0, 0
    with torch.no_grad():
        for start in range(0, len(y), EVAL_BATCH):
            xb = torch.from_numpy(np.array(x[start : start + EVAL_BATCH]))
            yb = torch.from_numpy(np.array(y[start : start + EVAL_BATCH]))
            logits = model(xb)
            total_loss += float(torch.nn.functional.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(dim=1) == yb).sum())
    return {"loss": total_loss / len(y), "accuracy": correct / len(y), "samples": int(len(y))}


# ---- daemon side ----
# The daemon never builds a real model to check a spec: a skeleton on
# torch's meta device has the layout and parameter count and no memory.

def _skeleton_of(spec: JobSpec, data) -> Any:
    from spirtd.train.models import ModelSpec, skeleton

    return skeleton(ModelSpec.from_dict(spec.model.to_dict()), tuple(data.input_shape), data.num_classes)


def describe(spec: JobSpec) -> DataShape:
    """Loads the data and lays out the model once: ConfigError (naming the
    file or the option) if either cannot be made from this spec."""
    from spirtd.train.models import num_parameters

    data = dataset_of(spec.to_dict())
    return DataShape(n_train=data.n_train, batches_per_epoch=data.batches_per_epoch(spec.batch_size),
                     n_params=num_parameters(_skeleton_of(spec, data)))  # fmt: skip


def initial_parameters(spec: JobSpec) -> np.ndarray:
    """Version 0 of the parameters, built afresh (not cached: a big model
    must not stay in the daemon's memory)."""
    from spirtd.train.models import ModelSpec, build_model, flatten_parameters

    data = dataset_of(spec.to_dict())
    model = build_model(ModelSpec.from_dict(spec.model.to_dict()), tuple(data.input_shape), data.num_classes,
                        spec.seed)  # fmt: skip
    return flatten_parameters(model)


def model_inputs(spec: JobSpec) -> tuple[tuple[int, ...], int]:
    """What the model is built for: one sample's shape and the number of classes."""
    data = dataset_of(spec.to_dict())
    return tuple(int(d) for d in data.input_shape), int(data.num_classes)


def layout(spec: JobSpec) -> list[tuple[str, tuple[int, ...]]]:
    from spirtd.train.models import parameter_layout

    return parameter_layout(_skeleton_of(spec, dataset_of(spec.to_dict())))


def training(store_location: dict[str, str], clock: Clock):
    """The JobManager's Training: this module's functions, and warm worker
    pools (kept between jobs with the same settings) with the job's limits;
    store_location is store_env(...) of the store the workers use."""
    from spirtd.train.manager import Training
    from spirtd.train.warm_pools import WarmPools

    pools = WarmPools(HANDLER, {**WORKER_ENV, **store_location}, clock)
    return Training(describe=describe, initial_parameters=initial_parameters, invoker=pools.invoker,
                    idle=pools.idle)  # fmt: skip
