"""Models rebuilt anywhere from a small spec.

    spec = ModelSpec("resnet", {"depth": 8})
    model = build_model(spec, input_shape=(3, 32, 32), num_classes=10, seed=1)
    vector = flatten_parameters(model)        # what the store keeps
    load_flat_parameters(model, vector)       # what a worker does first

The same (spec, input_shape, num_classes, seed) gives bit-identical
parameters in any process: initialisation runs on torch's CPU generator,
seeded for the build and restored afterwards. Adding a model is one module
with its builder and ModelDef, and one line in MODELS. No model has
BatchNorm or dropout (see base.py).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any

import torch
from torch import nn

from spirtd.errors import ConfigError
from spirtd.ml.models import lenet, mlp, mobilenet, resnet
from spirtd.ml.models.base import ModelDef
from spirtd.ml.models.flat import (
    flatten_gradients,
    flatten_parameters,
    load_flat_parameters,
    num_parameters,
    parameter_layout,
)
from spirtd.options import resolve_options, user_options

__all__ = [
    "MODELS",
    "ModelDef",
    "ModelSpec",
    "build_model",
    "skeleton",
    "flatten_gradients",
    "flatten_parameters",
    "load_flat_parameters",
    "num_parameters",
    "parameter_layout",
]

MODELS: Mapping[str, ModelDef] = MappingProxyType(
    {
        "mlp": mlp.MODEL,
        "lenet": lenet.MODEL,
        "resnet": resnet.MODEL,
        "mobilenet_v3_small": mobilenet.MODEL,
    }
)

# torch.manual_seed takes seeds in [0, 2**64); keep them signed-64-safe.
MAX_SEED = 2**63 - 1


def _model_def(name: object) -> ModelDef:
    model = MODELS.get(name) if isinstance(name, str) else None
    if model is None:
        raise ConfigError(f"unknown model {name!r}; known models: {', '.join(MODELS)}")
    return model


@dataclass(frozen=True)
class ModelSpec:
    """A model by registry name and options. Checked when made: an unknown
    name or option, or a bad value, is a ConfigError. `options` keeps only
    what was given (canonical: lists become tuples); `resolved()` adds the
    defaults."""

    name: str
    options: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        model = _model_def(self.name)
        given = user_options(f"model {self.name!r}", model.options, self.options)
        object.__setattr__(self, "options", MappingProxyType(given))

    def __hash__(self) -> int:
        return hash((self.name, tuple(sorted(self.options.items()))))

    def resolved(self) -> dict[str, Any]:
        """Every option, defaults filled in."""
        return resolve_options(f"model {self.name!r}", MODELS[self.name].options, self.options)

    def to_dict(self) -> dict[str, Any]:
        """{"name": ..., **options}, JSON- and TOML-ready (tuples as lists)."""
        plain = {k: list(v) if isinstance(v, tuple) else v for k, v in self.options.items()}
        return {"name": self.name, **plain}

    @classmethod
    def from_dict(cls, value: Mapping[str, Any]) -> "ModelSpec":
        """The inverse of to_dict."""
        if not isinstance(value, Mapping) or not isinstance(value.get("name"), str):
            raise ConfigError(f"a model must be a mapping with a name, got {value!r}")
        return cls(value["name"], {k: v for k, v in value.items() if k != "name"})


def _check_build_args(input_shape: object, num_classes: object, seed: object) -> tuple[int, ...]:
    if not isinstance(input_shape, (tuple, list)) or not all(
        isinstance(d, int) and not isinstance(d, bool) and d > 0 for d in input_shape
    ):
        raise ConfigError(f"input_shape must be a tuple of positive integers, got {input_shape!r}")
    if not isinstance(num_classes, int) or isinstance(num_classes, bool) or num_classes < 2:
        raise ConfigError(f"num_classes must be an integer >= 2, got {num_classes!r}")
    if not isinstance(seed, int) or isinstance(seed, bool) or not 0 <= seed <= MAX_SEED:
        raise ConfigError(f"seed must be an integer in [0, 2**63), got {seed!r}")
    return tuple(input_shape)


def build_model(
    spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int, seed: int
) -> nn.Module:
    """The model of `spec` for inputs of `input_shape` (one sample, without
    the batch dimension) and `num_classes` outputs, initialised from `seed`,
    in training mode, float32 on the CPU. The global torch RNG is left as
    it was. An input shape the model cannot take is a ConfigError."""
    if not isinstance(spec, ModelSpec):
        raise ConfigError(f"spec must be a ModelSpec, got {spec!r}")
    shape = _check_build_args(input_shape, num_classes, seed)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = MODELS[spec.name].build(shape, num_classes, spec.resolved())
    return model.to(torch.float32).train()


def skeleton(spec: ModelSpec, input_shape: tuple[int, ...], num_classes: int) -> nn.Module:
    """The model of `spec` on torch's meta device: its structure, layout and
    parameter count, with no memory behind its tensors. What the daemon
    checks a spec with, before any real model of that size is allocated."""
    if not isinstance(spec, ModelSpec):
        raise ConfigError(f"spec must be a ModelSpec, got {spec!r}")
    shape = _check_build_args(input_shape, num_classes, 0)
    with torch.device("meta"):
        return MODELS[spec.name].build(shape, num_classes, spec.resolved())
