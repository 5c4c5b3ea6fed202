"""The numpy steps against torch.optim, fed the same gradients."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from spirtd.optim import AdamConfig, SgdConfig, adam_step, sgd_step

STEPS = 5
SHAPE = (4, 5)


def tolerance(dtype: type) -> dict:
    return {"rtol": 1e-5, "atol": 1e-7} if dtype == np.float32 else {"rtol": 1e-12, "atol": 1e-14}


def gradients(seed: int, dtype: type) -> tuple[np.ndarray, list[np.ndarray]]:
    rng = np.random.default_rng(seed)
    param = rng.standard_normal(SHAPE).astype(dtype)
    return param, [rng.standard_normal(SHAPE).astype(dtype) for _ in range(STEPS)]


SGD_CONFIGS = {
    "plain": dict(lr=0.1),
    "momentum": dict(lr=0.1, momentum=0.9),
    "dampening": dict(lr=0.05, momentum=0.8, dampening=0.5),
    "nesterov": dict(lr=0.1, momentum=0.9, nesterov=True),
    "weight_decay": dict(lr=0.1, weight_decay=0.01),
    "maximize": dict(lr=0.1, maximize=True),
    "all": dict(lr=0.03, momentum=0.7, nesterov=True, weight_decay=0.1, maximize=True),
    "zero_lr": dict(lr=0.0, momentum=0.5),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", SGD_CONFIGS)
def test_sgd_step_matches_torch(name, dtype):
    kwargs = SGD_CONFIGS[name]
    cfg = SgdConfig(**kwargs)
    param, grads = gradients(1, dtype)
    tparam = torch.nn.Parameter(torch.from_numpy(param.copy()))
    opt = torch.optim.SGD([tparam], **kwargs)
    buf = None
    for g in grads:
        tparam.grad = torch.from_numpy(g.copy())
        opt.step()
        param, buf = sgd_step(param, g, buf, cfg)
        assert param.dtype == dtype
        np.testing.assert_allclose(param, tparam.detach().numpy(), **tolerance(dtype))
        if cfg.momentum > 0:
            assert buf is not None and buf.dtype == dtype
            torch_buf = opt.state[tparam]["momentum_buffer"].numpy()
            np.testing.assert_allclose(buf, torch_buf, **tolerance(dtype))
        else:
            assert buf is None


ADAM_CONFIGS = {
    "default": (torch.optim.Adam, dict(lr=1e-3)),
    "betas": (torch.optim.Adam, dict(lr=0.01, betas=(0.5, 0.9), eps=1e-6)),
    "weight_decay": (torch.optim.Adam, dict(lr=0.01, weight_decay=0.1)),
    "maximize": (torch.optim.Adam, dict(lr=0.01, maximize=True)),
    "adamw": (torch.optim.AdamW, dict(lr=0.01, weight_decay=0.1)),
    "adamw_maximize": (torch.optim.AdamW, dict(lr=0.02, weight_decay=0.05, maximize=True)),
    "beta_zero": (torch.optim.Adam, dict(lr=0.01, betas=(0.0, 0.0))),
}


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("name", ADAM_CONFIGS)
def test_adam_step_matches_torch(name, dtype):
    optimizer, kwargs = ADAM_CONFIGS[name]
    cfg = AdamConfig(decoupled=optimizer is torch.optim.AdamW, **kwargs)
    param, grads = gradients(2, dtype)
    tparam = torch.nn.Parameter(torch.from_numpy(param.copy()))
    opt = optimizer([tparam], foreach=False, **kwargs)
    m = v = None
    step = 0
    for g in grads:
        tparam.grad = torch.from_numpy(g.copy())
        opt.step()
        param, m, v, step = adam_step(param, g, m, v, step, cfg)
        state = opt.state[tparam]
        assert step == int(state["step"])
        assert param.dtype == m.dtype == v.dtype == dtype
        np.testing.assert_allclose(param, tparam.detach().numpy(), **tolerance(dtype))
        np.testing.assert_allclose(m, state["exp_avg"].numpy(), **tolerance(dtype))
        np.testing.assert_allclose(v, state["exp_avg_sq"].numpy(), **tolerance(dtype))


def test_adam_step_zero_state_equals_none():
    param, (g, *_) = gradients(3, np.float32)
    cfg = AdamConfig(lr=0.01)
    a = adam_step(param, g, None, None, 0, cfg)
    b = adam_step(param, g, np.zeros_like(param), np.zeros_like(param), 0, cfg)
    for x, y in zip(a, b):
        np.testing.assert_array_equal(x, y)


def test_steps_do_not_modify_inputs():
    param, (g, buf, m, v, _) = gradients(4, np.float32)
    v = np.abs(v)
    originals = [t.copy() for t in (param, g, buf, m, v)]
    sgd_step(param, g, buf, SgdConfig(lr=0.1, momentum=0.9, weight_decay=0.1))
    adam_step(param, g, m, v, 3, AdamConfig(weight_decay=0.1))
    adam_step(param, g, m, v, 3, AdamConfig(weight_decay=0.1, decoupled=True))
    for t, o in zip((param, g, buf, m, v), originals):
        np.testing.assert_array_equal(t, o)


def test_steps_accept_read_only_inputs():
    param, (g, *_) = gradients(6, np.float64)
    param.flags.writeable = False
    g.flags.writeable = False
    new_p, _ = sgd_step(param, g, None, SgdConfig(lr=0.1))
    assert new_p.flags.writeable
    adam_step(param, g, None, None, 0, AdamConfig())
