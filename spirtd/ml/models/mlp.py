"""A multilayer perceptron: the input flattened, then fully connected
layers with ReLU between them. Takes any input shape; with hidden = [] it
is multinomial logistic regression."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any

from torch import nn

from spirtd.errors import ConfigError
from spirtd.ml.models.base import MAX_LAYERS, MAX_WIDTH, ModelDef
from spirtd.options import Option, int_tuple


def build(input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]) -> nn.Module:
    if len(input_shape) < 1:
        raise ConfigError(f"model 'mlp' needs an input with at least one dimension; got {input_shape}")
    widths = (math.prod(input_shape), *options["hidden"])
    layers: list[nn.Module] = [nn.Flatten()]
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*layers)


MODEL = ModelDef(
    name="mlp",
    summary="fully connected layers with ReLU",
    inputs="any shape (flattened)",
    options={"hidden": Option((128, 64), int_tuple(minimum=1, maximum=MAX_WIDTH, max_len=MAX_LAYERS), "widths of the hidden layers")},
    build=build,
)
