"""What a job's model and data are, for the daemon and the workers: the
dataset and the model skeleton (cached by what they were built from), the
data's shape and the model's size, version 0 of the parameters, and the
layout of the flat parameter vector.

The daemon imports this module at start and torch only when a function
here needs it; to check a spec it builds the model on torch's meta device
(the layout and parameter count, no memory).
"""

from __future__ import annotations

import json
from functools import lru_cache
from typing import TYPE_CHECKING, Any

import numpy as np

from spirtd.ml.tasks import DataShape, WorkSpec

if TYPE_CHECKING:
    from spirtd.ml.datasets import Dataset

CACHE_SIZE = 4


@lru_cache(maxsize=CACHE_SIZE)
def _dataset(dataset_key: str, seed: int) -> "Dataset":
    from spirtd.ml.datasets import DatasetSpec, load_dataset

    return load_dataset(DatasetSpec.from_dict(json.loads(dataset_key)), seed)


def dataset_of(work: WorkSpec) -> "Dataset":
    """The job's dataset, loaded once per process (DatasetError if it cannot be)."""
    return _dataset(work.key("dataset"), work.seed)


@lru_cache(maxsize=CACHE_SIZE)
def _skeleton(model_key: str, input_shape: tuple[int, ...], num_classes: int, seed: int) -> Any:
    from spirtd.ml.models import ModelSpec, build_model

    return build_model(ModelSpec.from_dict(json.loads(model_key)), input_shape, num_classes, seed)


def model_of(work: WorkSpec, data: "Dataset") -> Any:
    """The job's model, built once per process; load parameters into it before use."""
    return _skeleton(work.key("model"), tuple(data.input_shape), data.num_classes, work.seed)


def _meta_model(work: WorkSpec, data: "Dataset") -> Any:
    from spirtd.ml.models import ModelSpec, skeleton

    return skeleton(ModelSpec.from_dict(dict(work.model)), tuple(data.input_shape), data.num_classes)


def describe(work: WorkSpec) -> DataShape:
    """Loads the data and lays out the model once: ConfigError (naming the
    file or the option) if either cannot be made from this spec."""
    from spirtd.ml.models import num_parameters

    data = dataset_of(work)
    return DataShape(n_train=data.n_train, batches_per_epoch=data.batches_per_epoch(work.batch_size),
                     n_params=num_parameters(_meta_model(work, data)))  # fmt: skip


def initial_parameters(work: WorkSpec) -> np.ndarray:
    """Version 0 of the parameters, built afresh (not cached: a big model
    must not stay in the daemon's memory)."""
    from spirtd.ml.models import ModelSpec, build_model, flatten_parameters

    data = dataset_of(work)
    return flatten_parameters(build_model(ModelSpec.from_dict(dict(work.model)), tuple(data.input_shape),
                                          data.num_classes, work.seed))  # fmt: skip


def model_inputs(work: WorkSpec) -> tuple[tuple[int, ...], int]:
    """What the model is built for: one sample's shape and the number of classes."""
    data = dataset_of(work)
    return tuple(int(d) for d in data.input_shape), int(data.num_classes)


def layout(work: WorkSpec) -> list[tuple[str, tuple[int, ...]]]:
    """The names and shapes of the parts of the flat parameter vector, in order."""
    from spirtd.ml.models import parameter_layout

    data = dataset_of(work)
    return parameter_layout(_meta_model(work, data))
