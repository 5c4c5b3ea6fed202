"""Configs and step inputs that are refused, and the words they are refused with."""

from __future__ import annotations

import math
import re

import numpy as np
import pytest

from spirtd.errors import ConfigError, InvalidTensor
from spirtd.optim import AdamConfig, SgdConfig, adam_step, sgd_step

SGD_ERRORS = [
    (dict(lr=-0.1), "lr must be finite and >= 0"),
    (dict(lr=math.nan), "lr must be finite and >= 0"),
    (dict(lr=math.inf), "lr must be finite and >= 0"),
    (dict(lr="0.1"), "lr must be a number"),
    (dict(lr=True), "lr must be a number"),
    (dict(lr=0.1, momentum=-0.9), "momentum must be finite and >= 0"),
    (dict(lr=0.1, dampening=-1), "dampening must be finite and >= 0"),
    (dict(lr=0.1, weight_decay=math.nan), "weight_decay must be finite and >= 0"),
    (dict(lr=0.1, nesterov=True), "nesterov needs momentum > 0 and dampening 0"),
    (
        dict(lr=0.1, momentum=0.9, dampening=0.1, nesterov=True),
        "nesterov needs momentum > 0 and dampening 0",
    ),
    (dict(lr=0.1, maximize=1), "maximize must be True or False"),
]


@pytest.mark.parametrize("kwargs, message", SGD_ERRORS)
def test_sgd_config_refuses(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        SgdConfig(**kwargs)


ADAM_ERRORS = [
    (dict(lr=-1e-3), "lr must be finite and >= 0"),
    (dict(eps=-1e-8), "eps must be finite and >= 0"),
    (dict(weight_decay=math.inf), "weight_decay must be finite and >= 0"),
    (dict(betas=(1.0, 0.999)), "betas must each be in [0, 1)"),
    (dict(betas=(0.9, 1.5)), "betas must each be in [0, 1)"),
    (dict(betas=(-0.1, 0.999)), "betas must be finite and >= 0"),
    (dict(betas=(0.9,)), "betas must be two numbers"),
    (dict(decoupled="yes"), "decoupled must be True or False"),
]


@pytest.mark.parametrize("kwargs, message", ADAM_ERRORS)
def test_adam_config_refuses(kwargs, message):
    with pytest.raises(ConfigError, match=re.escape(message)):
        AdamConfig(**kwargs)


def test_configs_normalise_numbers():
    cfg = SgdConfig(lr=1, momentum=np.float32(0.5))
    assert type(cfg.lr) is float and type(cfg.momentum) is float
    assert AdamConfig(betas=[0.5, 0.6]).betas == (0.5, 0.6)
    assert SgdConfig(lr=0.1, momentum=0.9, nesterov=True).nesterov


P = np.zeros(6, np.float32)
SGD = SgdConfig(lr=0.1)
SGD_M = SgdConfig(lr=0.1, momentum=0.9)
ADAM = AdamConfig()


def bad_grad() -> np.ndarray:
    g = np.zeros(6, np.float32)
    g[4] = np.nan
    g[5] = np.inf
    return g


STEP_ERRORS = [
    (
        lambda: sgd_step(P, bad_grad(), None, SGD),
        "gradient has a non-finite value at element 4; nothing was written",
    ),
    (
        lambda: adam_step(P, bad_grad(), None, None, 0, ADAM),
        "gradient has a non-finite value at element 4; nothing was written",
    ),
    (
        lambda: sgd_step(P, np.zeros(5, np.float32), None, SGD),
        "gradient is float32 (5,) but the parameter is float32 (6,)",
    ),
    (
        lambda: sgd_step(P, np.zeros(6), None, SGD),
        "gradient is float64 (6,) but the parameter is float32 (6,)",
    ),
    (
        lambda: sgd_step(np.zeros(6, np.int32), np.zeros(6, np.int32), None, SGD),
        "the parameter has dtype int32; optimizer steps need float32 or float64",
    ),
    (lambda: sgd_step([0.0], np.zeros(1), None, SGD), "the parameter is a list, not a numpy array"),
    (
        lambda: sgd_step(P, P, np.zeros((2, 3), np.float32), SGD_M),
        "momentum buffer is float32 (2, 3) but the parameter is float32 (6,)",
    ),
    (
        lambda: adam_step(P, P, np.zeros(6), None, 0, ADAM),
        "exp_avg is float64 (6,) but the parameter is float32 (6,)",
    ),
    (
        lambda: adam_step(P, P, None, np.zeros(3, np.float32), 0, ADAM),
        "exp_avg_sq is float32 (3,) but the parameter is float32 (6,)",
    ),
    (
        lambda: adam_step(P, P, None, None, -1, ADAM),
        "step must count the steps taken (an integer >= 0), got -1",
    ),
    (lambda: adam_step(P, P, None, None, 1.0, ADAM), "step must count the steps taken"),
    (lambda: adam_step(P, P, None, None, True, ADAM), "step must count the steps taken"),
]


@pytest.mark.parametrize("call, message", STEP_ERRORS)
def test_steps_refuse_bad_inputs(call, message):
    with pytest.raises(InvalidTensor) as info:
        call()
    assert str(info.value).startswith(message)


def test_sgd_step_ignores_buffer_without_momentum():
    g = np.ones(6, np.float32)
    new_p, new_b = sgd_step(P, g, np.full(6, 5.0, np.float64), SGD)
    assert new_b is None
    np.testing.assert_array_equal(new_p, sgd_step(P, g, None, SGD)[0])
