"""What a gradient worker runs (tasks.HANDLER): one task per invocation.

    GradientTask: read the parameters at params_key from the store, load
        minibatch (epoch, index), forward + backward, write the flat float32
        gradient to out_key; answer its loss and sample count.
    EvaluateTask: loss and accuracy of the parameters on a split.

Nothing kept between invocations changes a result: the store connection,
loaded datasets and model skeletons are cached by what they were built
from, and the parameters are loaded into the skeleton on every invocation.
Torch, the models and the datasets are imported here, before the worker
says it is ready, so that a warm worker's first minibatch costs what every
other one does (the pool's start_timeout_s covers the import). The daemon
never imports this module.
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

import numpy as np
import torch

from spirtd.errors import TensorNotFound
from spirtd.ml import datasets, models
from spirtd.ml.describe import dataset_of, model_of
from spirtd.ml.tasks import Evaluation, EvaluateTask, GradientResult, GradientTask, decode_task, encode_result
from spirtd.store.blocking import BlockingStore

EVAL_BATCH = 1024


@lru_cache(maxsize=1)
def _store() -> BlockingStore:
    return BlockingStore.from_env()


def handle(request: dict[str, Any]) -> dict[str, Any]:
    """The worker pool's entry point: a task's wire form in, its result's out."""
    task = decode_task(request)
    return encode_result(gradient(task) if isinstance(task, GradientTask) else evaluate(task))


def _load(task: GradientTask | EvaluateTask) -> tuple[datasets.Dataset, torch.nn.Module]:
    torch.set_num_threads(1)
    data = dataset_of(task.work)
    model = model_of(task.work, data)
    try:
        params = _store().get(task.params_key)
    except TensorNotFound as exc:
        raise TensorNotFound(f"parameters {task.params_key} are not in the store ({exc}); "
                             "a newer round may have replaced them") from None  # fmt: skip
    models.load_flat_parameters(model, params)
    return data, model


def gradient(task: GradientTask) -> GradientResult:
    data, model = _load(task)
    x, y = data.minibatch(task.work.batch_size, task.epoch, task.index)
    model.train()
    model.zero_grad(set_to_none=True)
    loss = torch.nn.functional.cross_entropy(model(torch.from_numpy(np.array(x))), torch.from_numpy(np.array(y)))
    loss.backward()
    _store().set(task.out_key, models.flatten_gradients(model))
    return GradientResult(loss=float(loss.item()), samples=int(len(y)))


def evaluate(task: EvaluateTask) -> Evaluation:
    data, model = _load(task)
    x, y = (data.val_x, data.val_y) if task.split == "val" else (data.test_x, data.test_y)
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
    return Evaluation(loss=total_loss / len(y), accuracy=correct / len(y), samples=int(len(y)))
