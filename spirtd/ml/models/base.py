"""What every model shares: its registry entry, and the pieces the networks
are built from.

No model here has BatchNorm. Its running mean and variance are state
outside the gradient: a stateless worker that computes one minibatch's
gradient cannot update them, and peers could not agree on them. The
convolutional networks use GroupNorm, whose statistics come from each
sample alone, so the flat parameter vector is the whole model. No model
has dropout either (it would need a random stream per minibatch), and no
activation runs in place.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from torch import nn

from spirtd.errors import ConfigError
from spirtd.options import Option

__all__ = ["MAX_CHANNELS", "MAX_LAYERS", "MAX_WIDTH", "ModelDef", "Builder", "group_norm", "image_shape"]

# Bounds of the size options: far above any model these machines train, low
# enough that building the model's skeleton (on torch's meta device, to
# count its parameters before anything is allocated) stays instant. The
# store's memory limit is what then refuses a model too big to train.
MAX_WIDTH = 1 << 20
MAX_CHANNELS = 1 << 14
MAX_LAYERS = 64
MAX_GROUPS = 1024

# (input_shape, num_classes, resolved options) -> module, built on the
# current torch RNG; build_model seeds it.
Builder = Callable[[tuple[int, ...], int, Mapping[str, Any]], nn.Module]


@dataclass(frozen=True)
class ModelDef:
    """One model of the registry: a one-line summary, its options, the
    inputs it takes (in words, for errors), and its builder, which raises
    ConfigError for an input shape it cannot take."""

    name: str
    summary: str
    inputs: str
    options: Mapping[str, Option]
    build: Builder = field(repr=False)


def image_shape(model: str, input_shape: tuple[int, ...], min_side: int) -> tuple[int, int, int]:
    """(channels, height, width) of an image input, or ConfigError."""
    if len(input_shape) != 3:
        raise ConfigError(
            f"model {model!r} takes images (channels, height, width); got input shape "
            f"{input_shape}"
        )
    channels, height, width = input_shape
    if height < min_side or width < min_side:
        raise ConfigError(
            f"model {model!r} takes images of at least {min_side}x{min_side}; got "
            f"{height}x{width}"
        )
    return channels, height, width


def group_norm(channels: int, max_groups: int) -> nn.GroupNorm:
    """GroupNorm over `channels` with the most groups, up to max_groups,
    that divide them evenly (so every channel count works)."""
    groups = max(g for g in range(1, min(max_groups, channels) + 1) if channels % g == 0)
    return nn.GroupNorm(groups, channels)
