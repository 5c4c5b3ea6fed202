"""spirtd.ml.models: every model builds for its shapes, trains (forward,
backward), is rebuilt bit-identically from its spec and seed, and round-
trips through the flat parameter vector."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from torch import nn

from spirtd.errors import ConfigError
from spirtd.ml.models import (
    MODELS,
    ModelSpec,
    build_model,
    flatten_gradients,
    flatten_parameters,
    load_flat_parameters,
    num_parameters,
    parameter_layout,
)

pytestmark = pytest.mark.timeout(120)

BATCH = 2
CLASSES = 10
DIGITS, MNIST, CIFAR = (1, 8, 8), (1, 28, 28), (3, 32, 32)

# (model, input shape, parameter count on 10 classes): every model on every
# shape it is meant for. The counts pin the architectures down.
CASES = [
    ("mlp", (20,), 11_594),
    ("mlp", DIGITS, 17_226),
    ("mlp", MNIST, 109_386),
    ("lenet", DIGITS, 21_386),
    ("lenet", MNIST, 61_706),  # LeNet-5's classic count
    ("lenet", CIFAR, 62_006),
    ("resnet", CIFAR, 272_474),  # ResNet-20
    ("resnet", MNIST, 272_186),
    ("mobilenet_v3_small", CIFAR, 1_528_106),
    ("mobilenet_v3_small", DIGITS, 1_527_818),
]
# Models whose parameters would flood a quick test; ResNet-8 stands in for resnet.
SMALL = {"mlp": {}, "lenet": {}, "resnet": {"depth": 8}, "mobilenet_v3_small": {"width_mult": 0.25}}
SMALL_SHAPE = {"mlp": (12,), "lenet": DIGITS, "resnet": DIGITS, "mobilenet_v3_small": DIGITS}


def small(name: str, seed: int = 0) -> nn.Module:
    return build_model(ModelSpec(name, SMALL[name]), SMALL_SHAPE[name], CLASSES, seed)


@pytest.mark.parametrize(("name", "shape", "count"), CASES, ids=lambda v: str(v))
def test_build_model_forward_backward_fill_every_gradient(name: str, shape: tuple[int, ...], count: int) -> None:
    model = build_model(ModelSpec(name), shape, CLASSES, seed=0)
    assert num_parameters(model) == count
    x = torch.randn(BATCH, *shape, generator=torch.Generator().manual_seed(1))
    out = model(x)
    assert out.shape == (BATCH, CLASSES) and out.dtype == torch.float32
    nn.functional.cross_entropy(out, torch.tensor([1, 2])).backward()
    missing = [n for n, p in model.named_parameters() if p.grad is None or not torch.isfinite(p.grad).all()]
    assert missing == []
    assert flatten_gradients(model).shape == (count,)


def test_build_model_parameter_counts_are_modest() -> None:
    counts = {name: num_parameters(build_model(ModelSpec(name), CIFAR, CLASSES, 0)) for name in MODELS if name != "mlp"}
    print("parameters on 3x32x32, 10 classes:", counts)
    assert all(count < 3_000_000 for count in counts.values())


@pytest.mark.parametrize("name", list(MODELS))
def test_build_model_same_seed_identical_other_seed_differs(name: str) -> None:
    a, b, c = flatten_parameters(small(name, 7)), flatten_parameters(small(name, 7)), flatten_parameters(small(name, 8))
    assert a.dtype == np.float32
    assert a.tobytes() == b.tobytes()
    assert not np.array_equal(a, c)


def test_build_model_leaves_global_rng_alone() -> None:
    torch.manual_seed(123)
    expected = torch.rand(3)
    torch.manual_seed(123)
    small("lenet", 5)
    assert torch.equal(torch.rand(3), expected)


@pytest.mark.parametrize("name", list(MODELS))
def test_models_have_no_batchnorm_dropout_or_buffers(name: str) -> None:
    model = build_model(ModelSpec(name), CIFAR, CLASSES, 0)
    kinds = {type(m) for m in model.modules()}
    assert not kinds & {nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout}
    assert list(model.buffers()) == []
    assert all(not getattr(m, "inplace", False) for m in model.modules())


@pytest.mark.parametrize("name", list(MODELS))
def test_backward_is_deterministic(name: str) -> None:
    model = small(name)
    x = torch.randn(BATCH, *SMALL_SHAPE[name], generator=torch.Generator().manual_seed(2))
    grads = []
    for _ in range(2):
        model.zero_grad()
        nn.functional.cross_entropy(model(x), torch.tensor([0, 3])).backward()
        grads.append(flatten_gradients(model).tobytes())
    assert grads[0] == grads[1]


@pytest.mark.parametrize("name", list(MODELS))
def test_flat_parameters_round_trip(name: str) -> None:
    source, target = small(name, 1), small(name, 2)
    vector = flatten_parameters(source)
    load_flat_parameters(target, vector)
    assert flatten_parameters(target).tobytes() == vector.tobytes()
    x = torch.randn(BATCH, *SMALL_SHAPE[name])
    assert torch.equal(source(x), target(x))
    vector[0] += 1.0  # a copy: changing it leaves the model alone
    assert flatten_parameters(target)[0] != vector[0]


@pytest.mark.parametrize("name", list(MODELS))
def test_parameter_layout_matches_state_dict(name: str) -> None:
    model = small(name)
    layout = parameter_layout(model)
    state = model.state_dict()
    assert [n for n, _ in layout] == list(state)
    assert all(tuple(state[n].shape) == shape for n, shape in layout)
    # Cutting the flat vector by the layout gives the state dict back.
    vector, offset, rebuilt = flatten_parameters(model), 0, {}
    for n, shape in layout:
        size = int(np.prod(shape))
        rebuilt[n] = torch.from_numpy(vector[offset : offset + size].reshape(shape))
        offset += size
    assert offset == len(vector)
    assert all(torch.equal(rebuilt[n], state[n]) for n in state)


def test_load_flat_parameters_wrong_length_or_dtype() -> None:
    model = small("mlp")
    n = num_parameters(model)
    with pytest.raises(ConfigError, match=f"has {n} parameters"):
        load_flat_parameters(model, np.zeros(n + 1, np.float32))
    with pytest.raises(ConfigError, match="shape"):
        load_flat_parameters(model, np.zeros((1, n), np.float32))
    with pytest.raises(ConfigError, match="floats"):
        load_flat_parameters(model, np.zeros(n, np.int32))


def test_flatten_gradients_zeros_before_backward() -> None:
    model = small("mlp")
    assert not flatten_gradients(model).any()


def test_model_spec_unknown_name_lists_known() -> None:
    with pytest.raises(ConfigError, match="unknown model 'vgg'.*mlp, lenet, resnet, mobilenet_v3_small"):
        ModelSpec("vgg")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("mlp", {"width": 3}, "model 'mlp' has no option 'width'; its options: hidden"),
        ("mlp", {"hidden": [0]}, "'hidden' must hold integers >= 1"),
        ("mlp", {"hidden": "64"}, "'hidden' must be a list of integers"),
        ("lenet", {"channels": [6]}, "'channels' must hold 2 integers"),
        ("resnet", {"depth": 7.5}, "'depth' must be an integer"),
        ("resnet", {"norm": "batch"}, "'norm' must be one of group, none"),
        ("mobilenet_v3_small", {"width_mult": 0}, "'width_mult' must be > 0"),
    ],
)
def test_model_spec_bad_option(name: str, options: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        ModelSpec(name, options)


def test_model_spec_canonical_and_round_trips() -> None:
    spec = ModelSpec("mlp", {"hidden": [32, 16]})
    assert spec.options == {"hidden": (32, 16)}
    assert spec.resolved() == {"hidden": (32, 16)}
    assert ModelSpec("lenet").resolved() == {"channels": (6, 16), "hidden": (120, 84)}
    assert spec.to_dict() == {"name": "mlp", "hidden": [32, 16]}
    assert ModelSpec.from_dict(spec.to_dict()) == spec
    assert len({spec, ModelSpec("mlp", {"hidden": (32, 16)}), ModelSpec("mlp")}) == 2


@pytest.mark.parametrize(
    ("name", "shape", "message"),
    [
        ("lenet", (64,), r"takes images \(channels, height, width\); got input shape \(64,\)"),
        ("resnet", (3, 4, 4), "at least 8x8; got 4x4"),
        ("mobilenet_v3_small", (32, 32), "takes images"),
        ("resnet", (1, 32, 32), None),
    ],
)
def test_build_model_input_shape(name: str, shape: tuple[int, ...], message: str | None) -> None:
    options = SMALL[name]
    if message is None:
        build_model(ModelSpec(name, options), shape, CLASSES, 0)
        return
    with pytest.raises(ConfigError, match=message):
        build_model(ModelSpec(name, options), shape, CLASSES, 0)


def test_build_model_resnet_depth_must_be_6n_plus_2() -> None:
    with pytest.raises(ConfigError, match="6n \\+ 2"):
        build_model(ModelSpec("resnet", {"depth": 10}), CIFAR, CLASSES, 0)


@pytest.mark.parametrize(
    ("shape", "classes", "seed", "message"),
    [
        ((0, 8, 8), 10, 0, "input_shape"),
        ("1x8x8", 10, 0, "input_shape"),
        (DIGITS, 1, 0, "num_classes"),
        (DIGITS, 10, -1, "seed"),
    ],
)
def test_build_model_bad_arguments(shape: object, classes: int, seed: int, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        build_model(ModelSpec("mlp"), shape, classes, seed)  # type: ignore[arg-type]
