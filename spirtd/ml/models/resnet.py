"""The CIFAR ResNets of He et al., "Deep Residual Learning for Image
Recognition" (2016), section 4.2: a 3x3 stem, then three stages of n basic
blocks at width w, 2w and 4w (the second and third start with stride 2),
global average pooling and one linear layer; depth = 6n + 2 (ResNet-8,
-14, -20, -32, ...).

GroupNorm stands in for BatchNorm (see base.py); norm = "none" drops it.
A shortcut that changes shape is a 1x1 convolution with stride (the
paper's option B). Made for 32x32 images; any image of at least 8x8 works.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import torch
from torch import nn

from spirtd.errors import ConfigError
from spirtd.ml.models.base import MAX_CHANNELS, MAX_GROUPS, ModelDef, group_norm, image_shape
from spirtd.options import Option, choice, integer

MIN_SIDE = 8
STAGES = 3


def _norm(channels: int, options: Mapping[str, Any]) -> nn.Module:
    if options["norm"] == "none":
        return nn.Identity()
    return group_norm(channels, options["norm_groups"])


class BasicBlock(nn.Module):
    """Two 3x3 convolutions with a shortcut around them."""

    def __init__(self, fan_in: int, fan_out: int, stride: int, options: Mapping[str, Any]) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(fan_in, fan_out, 3, stride=stride, padding=1, bias=False)
        self.norm1 = _norm(fan_out, options)
        self.conv2 = nn.Conv2d(fan_out, fan_out, 3, padding=1, bias=False)
        self.norm2 = _norm(fan_out, options)
        self.act = nn.ReLU()
        self.shortcut: nn.Module = nn.Identity()
        if stride != 1 or fan_in != fan_out:
            self.shortcut = nn.Sequential(
                nn.Conv2d(fan_in, fan_out, 1, stride=stride, bias=False), _norm(fan_out, options)
            )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.act(self.norm1(self.conv1(x)))
        out = self.norm2(self.conv2(out))
        return self.act(out + self.shortcut(x))


def build(input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]) -> nn.Module:
    channels, _, _ = image_shape("resnet", input_shape, MIN_SIDE)
    depth, width = options["depth"], options["width"]
    if (depth - 2) % (2 * STAGES) != 0:
        raise ConfigError(
            f"model 'resnet': option 'depth' must be 6n + 2 (8, 14, 20, 32, ...), got {depth}"
        )
    blocks = (depth - 2) // (2 * STAGES)
    layers: list[nn.Module] = [
        nn.Conv2d(channels, width, 3, padding=1, bias=False), _norm(width, options), nn.ReLU(),
    ]  # fmt: skip
    fan_in = width
    for stage in range(STAGES):
        fan_out = width * 2**stage
        for block in range(blocks):
            stride = 2 if stage > 0 and block == 0 else 1
            layers.append(BasicBlock(fan_in, fan_out, stride, options))
            fan_in = fan_out
    layers += [nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(fan_in, num_classes)]
    return nn.Sequential(*layers)


# The deepest network of the ResNet paper's CIFAR experiments.
MAX_DEPTH = 1202

MODEL = ModelDef(
    name="resnet",
    summary="CIFAR ResNet (He et al. 2016) with GroupNorm: depth 6n+2, widths w, 2w, 4w",
    inputs=f"images (channels, height, width), at least {MIN_SIDE}x{MIN_SIDE}; made for 32x32",
    options={
        "depth": Option(20, integer(minimum=8, maximum=MAX_DEPTH), "6n + 2: 8, 14, 20 (0.27M parameters), 32, ..."),
        "width": Option(16, integer(minimum=1, maximum=MAX_CHANNELS // 4), "channels of the first stage"),
        "norm": Option("group", choice("group", "none"), "GroupNorm after each convolution, or none"),
        "norm_groups": Option(8, integer(minimum=1, maximum=MAX_GROUPS), "the most groups a GroupNorm splits into"),
    },  # fmt: skip
    build=build,
)
