"""LeNet-5 (LeCun et al., 1998) with ReLU and max pooling, as it is
usually trained today: conv 5x5 (6 channels, padded) - pool - conv 5x5
(16) - pool - fc 120 - fc 84 - fc classes.

It takes any image of at least 8x8: 28x28 (MNIST) runs the classic
network (28 -> 14 -> 10 -> 5); 32x32x3 (CIFAR) gives 16 -> 12 -> 6, which
an adaptive average pool brings to 5x5; on 8x8 (digits) the second
convolution is padded too and the maps end at 2x2. No normalisation.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from torch import nn

from spirtd.ml.models.base import MAX_CHANNELS, MAX_LAYERS, MAX_WIDTH, ModelDef, image_shape
from spirtd.options import Option, int_tuple

KERNEL = 5
# The classic feature map before the classifier is 5x5; smaller inputs keep
# what they have.
POOLED_SIDE = 5
MIN_SIDE = 8


def build(input_shape: tuple[int, ...], num_classes: int, options: Mapping[str, Any]) -> nn.Module:
    channels, height, width = image_shape("lenet", input_shape, MIN_SIDE)
    c1, c2 = options["channels"]
    side = min(height, width) // 2
    # Pad the second convolution where an unpadded one would leave too little.
    pad2 = 0 if side >= 2 * KERNEL else KERNEL // 2
    side = (side + 2 * pad2 - KERNEL + 1) // 2
    pooled = min(POOLED_SIDE, side)
    widths = (c2 * pooled * pooled, *options["hidden"])
    layers: list[nn.Module] = [
        nn.Conv2d(channels, c1, KERNEL, padding=KERNEL // 2), nn.ReLU(), nn.MaxPool2d(2),
        nn.Conv2d(c1, c2, KERNEL, padding=pad2), nn.ReLU(), nn.MaxPool2d(2),
        nn.AdaptiveAvgPool2d(pooled), nn.Flatten(),
    ]  # fmt: skip
    for fan_in, fan_out in zip(widths, widths[1:]):
        layers += [nn.Linear(fan_in, fan_out), nn.ReLU()]
    layers.append(nn.Linear(widths[-1], num_classes))
    return nn.Sequential(*layers)


MODEL = ModelDef(
    name="lenet",
    summary="LeNet-5: two 5x5 convolutions with pooling, three fully connected layers",
    inputs=f"images (channels, height, width), at least {MIN_SIDE}x{MIN_SIDE}",
    options={
        "channels": Option((6, 16), int_tuple(minimum=1, maximum=MAX_CHANNELS, min_len=2, max_len=2),
                           "channels of the two convolutions"),
        "hidden": Option((120, 84), int_tuple(minimum=1, maximum=MAX_WIDTH, max_len=MAX_LAYERS), "widths of the hidden fc layers"),
    },  # fmt: skip
    build=build,
)
