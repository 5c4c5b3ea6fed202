"""MobileNetV3-Small (Howard et al., "Searching for MobileNetV3", 2019,
table 2), sized for 32x32 inputs: inverted residual blocks (1x1 expansion,
depthwise kxk, squeeze-and-excitation, 1x1 projection), ReLU in the early
blocks and hardswish later, then a 1x1 convolution to 576 channels,
global pooling, a 1024-wide hardswish layer and the classifier.

Changes from the paper, for training by stateless workers on small images:
GroupNorm instead of BatchNorm and no dropout (see base.py); the stem and
the first block keep stride 1 (the ImageNet network downsamples 32x, which
would leave a 32x32 image at 1x1), so a 32x32 input ends at 4x4.
width_mult scales every channel count (rounded to a multiple of 8).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, NamedTuple

import torch
from torch import nn

from spirtd.ml.models.base import MAX_GROUPS, MAX_WIDTH, ModelDef, group_norm, image_shape
from spirtd.options import Option, integer, number

MIN_SIDE = 8
DIVISOR = 8
STEM_CHANNELS = 16
LAST_CONV_CHANNELS = 576
SE_REDUCTION = 4


class Block(NamedTuple):
    kernel: int
    expanded: int
    out: int
    se: bool
    hardswish: bool
    stride: int


# Table 2 of the paper; the first block's stride is 1 here (it is 2 there).
BLOCKS = (
    Block(3, 16, 16, True, False, 1),
    Block(3, 72, 24, False, False, 2),
    Block(3, 88, 24, False, False, 1),
    Block(5, 96, 40, True, True, 2),
    Block(5, 240, 40, True, True, 1),
    Block(5, 240, 40, True, True, 1),
    Block(5, 120, 48, True, True, 1),
    Block(5, 144, 48, True, True, 1),
    Block(5, 288, 96, True, True, 2),
    Block(5, 576, 96, True, True, 1),
    Block(5, 576, 96, True, True, 1),
)


def make_divisible(value: float, divisor: int = DIVISOR) -> int:
    """value rounded to a multiple of divisor, never more than 10% below it
    (the rounding of the MobileNet papers)."""
    rounded = max(divisor, int(value + divisor / 2) // divisor * divisor)
    return rounded + divisor if rounded < 0.9 * value else rounded


def _conv(fan_in: int, fan_out: int, kernel: int, stride: int, groups: int, groups_norm: int,
          act: type[nn.Module] | None) -> nn.Sequential:  # fmt: skip
    layers: list[nn.Module] = [
        nn.Conv2d(fan_in, fan_out, kernel, stride=stride, padding=kernel // 2, groups=groups, bias=False),
        group_norm(fan_out, groups_norm),
    ]  # fmt: skip
    if act is not None:
        layers.append(act())
    return nn.Sequential(*layers)


class SqueezeExcitation(nn.Module):
    """Channel weights from the pooled map: 1x1 down, ReLU, 1x1 up, hardsigmoid."""

    def __init__(self, channels: int) -> None:
        super().__init__()
        squeezed = make_divisible(channels / SE_REDUCTION)
        self.gate = nn.Sequential(
            nn.AdaptiveAvgPool2d(1), nn.Conv2d(channels, squeezed, 1), nn.ReLU(),
            nn.Conv2d(squeezed, channels, 1), nn.Hardsigmoid(),
        )  # fmt: skip

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gate(x)


class InvertedResidual(nn.Module):
    def __init__(self, fan_in: int, block: Block, width_mult: float, norm_groups: int) -> None:
        super().__init__()
        expanded = make_divisible(block.expanded * width_mult)
        out = make_divisible(block.out * width_mult)
        act = nn.Hardswish if block.hardswish else nn.ReLU
        layers: list[nn.Module] = []
        if expanded != fan_in:
            layers.append(_conv(fan_in, expanded, 1, 1, 1, norm_groups, act))
        layers.append(_conv(expanded, expanded, block.kernel, block.stride, expanded, norm_groups, act))
        if block.se:
            layers.append(SqueezeExcitation(expanded))
        layers.append(_conv(expanded, out, 1, 1, 1, norm_groups, None))
        self.body = nn.Sequential(*layers)
        self.residual = block.stride == 1 and fan_in == out
        self.out_channels = out

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.body(x)
        return out + x if self.residual else out


def build(input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]) -> nn.Module:
    channels, _, _ = image_shape("mobilenet_v3_small", input_shape, MIN_SIDE)
    width_mult, groups = options["width_mult"], options["norm_groups"]
    fan_in = make_divisible(STEM_CHANNELS * width_mult)
    layers: list[nn.Module] = [_conv(channels, fan_in, 3, 1, 1, groups, nn.Hardswish)]
    for block in BLOCKS:
        residual = InvertedResidual(fan_in, block, width_mult, groups)
        layers.append(residual)
        fan_in = residual.out_channels
    last = make_divisible(LAST_CONV_CHANNELS * width_mult)
    layers += [
        _conv(fan_in, last, 1, 1, 1, groups, nn.Hardswish),
        nn.AdaptiveAvgPool2d(1), nn.Flatten(),
        nn.Linear(last, options["last_channel"]), nn.Hardswish(),
        nn.Linear(options["last_channel"], num_classes),
    ]  # fmt: skip
    return nn.Sequential(*layers)


# Channel counts grow linearly with width_mult (576 at 1.0 for the last convolution).
MAX_WIDTH_MULT = 64.0

MODEL = ModelDef(
    name="mobilenet_v3_small",
    summary="MobileNetV3-Small with GroupNorm, strides for 32x32 inputs",
    inputs=f"images (channels, height, width), at least {MIN_SIDE}x{MIN_SIDE}; made for 32x32",
    options={
        "width_mult": Option(1.0, number(0.0, strict=True, maximum=MAX_WIDTH_MULT), "scales every channel count"),
        "last_channel": Option(1024, integer(minimum=1, maximum=MAX_WIDTH), "width of the hidden classifier layer"),
        "norm_groups": Option(8, integer(minimum=1, maximum=MAX_GROUPS), "the most groups a GroupNorm splits into"),
    },  # fmt: skip
    build=build,
)
