"""Optimizer steps on numpy arrays, with torch.optim's semantics.

The reference for the native module's SPIRT.SGD and SPIRT.ADAM, and the
implementation of the plain-Redis backend; no I/O. A step takes the
parameter, its gradient and the optimizer state, and returns the new
parameter and state as fresh arrays: inputs are never modified. Every
element is computed in float64 and rounded to the parameter's dtype once,
when it is stored. A gradient with a non-finite value is refused, since it
would poison the model.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from spirtd.errors import ConfigError, InvalidTensor

__all__ = ["AdamConfig", "SgdConfig", "adam_step", "sgd_step"]

FLOAT_DTYPES = (np.dtype(np.float32), np.dtype(np.float64))


def _number(name: str, value: object) -> float:
    """A finite, non-negative float, or ConfigError."""
    if isinstance(value, bool) or not isinstance(value, (int, float, np.integer, np.floating)):
        raise ConfigError(f"{name} must be a number, got {value!r}")
    if not math.isfinite(value) or value < 0:
        raise ConfigError(f"{name} must be finite and >= 0, got {value!r}")
    return float(value)


def _flag(name: str, value: object) -> bool:
    if not isinstance(value, (bool, np.bool_)):
        raise ConfigError(f"{name} must be True or False, got {value!r}")
    return bool(value)


@dataclass(frozen=True)
class SgdConfig:
    """torch.optim.SGD's hyperparameters.

    momentum > 0 keeps a momentum buffer per parameter; dampening scales
    the new gradient's share of it (1 - dampening); nesterov looks ahead
    along the buffer and needs momentum > 0 and dampening 0. weight_decay
    adds weight_decay * param to the gradient (L2). maximize ascends.
    """

    lr: float
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    maximize: bool = False

    def __post_init__(self) -> None:
        for name in ("lr", "momentum", "dampening", "weight_decay"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        for name in ("nesterov", "maximize"):
            object.__setattr__(self, name, _flag(name, getattr(self, name)))
        if self.nesterov and (self.momentum <= 0 or self.dampening != 0):
            raise ConfigError("nesterov needs momentum > 0 and dampening 0")


@dataclass(frozen=True)
class AdamConfig:
    """torch.optim.Adam's hyperparameters; decoupled=True is AdamW.

    betas are the decay rates of the gradient's running mean and of its
    running square, each in [0, 1). eps keeps the denominator away from 0.
    weight_decay is added to the gradient (L2, Adam) or, when decoupled,
    shrinks the parameter by lr * weight_decay each step (AdamW).
    """

    lr: float = 1e-3
    betas: tuple[float, float] = (0.9, 0.999)
    eps: float = 1e-8
    weight_decay: float = 0.0
    decoupled: bool = False
    maximize: bool = False

    def __post_init__(self) -> None:
        for name in ("lr", "eps", "weight_decay"):
            object.__setattr__(self, name, _number(name, getattr(self, name)))
        for name in ("decoupled", "maximize"):
            object.__setattr__(self, name, _flag(name, getattr(self, name)))
        betas = self.betas
        if isinstance(betas, (str, bytes)) or len(betas) != 2:
            raise ConfigError(f"betas must be two numbers, got {betas!r}")
        b1, b2 = (_number("betas", b) for b in betas)
        if b1 >= 1 or b2 >= 1:
            raise ConfigError(f"betas must each be in [0, 1), got {betas!r}")
        object.__setattr__(self, "betas", (b1, b2))


# ---- checks ----


def _check_param(param: object) -> np.ndarray:
    if not isinstance(param, np.ndarray):
        raise InvalidTensor(f"the parameter is a {type(param).__name__}, not a numpy array")
    if param.dtype not in FLOAT_DTYPES:
        raise InvalidTensor(
            f"the parameter has dtype {param.dtype}; optimizer steps need float32 or float64"
        )
    return param


def _check_like(role: str, t: object, param: np.ndarray) -> np.ndarray:
    if not isinstance(t, np.ndarray):
        raise InvalidTensor(f"{role} is a {type(t).__name__}, not a numpy array")
    if t.dtype != param.dtype or t.shape != param.shape:
        raise InvalidTensor(
            f"{role} is {t.dtype} {t.shape} but the parameter is {param.dtype} {param.shape}"
        )
    return t


def _check_gradient(grad: object, param: np.ndarray) -> np.ndarray:
    g = _check_like("gradient", grad, param)
    finite = np.isfinite(g).reshape(-1)
    if not finite.all():
        raise InvalidTensor(
            f"gradient has a non-finite value at element {int(np.argmin(finite))}; "
            "nothing was written"
        )
    return g


def _f64(t: np.ndarray) -> np.ndarray:
    return np.asarray(t, dtype=np.float64)


# ---- steps ----


def sgd_step(
    param: np.ndarray, grad: np.ndarray, buf: np.ndarray | None, cfg: SgdConfig
) -> tuple[np.ndarray, np.ndarray | None]:
    """One torch.optim.SGD step. buf is the momentum buffer: None on the
    first step; ignored when momentum is 0 (plain SGD keeps none, as the
    other backends do). Returns (new_param, new_buf); new_buf is None when
    momentum is 0."""
    _check_param(param)
    _check_gradient(grad, param)
    if cfg.momentum == 0:
        buf = None
    elif buf is not None:
        _check_like("momentum buffer", buf, param)
    p = _f64(param)
    with np.errstate(all="ignore"):
        d = (-_f64(grad) if cfg.maximize else _f64(grad)) + cfg.weight_decay * p
        new_buf = None
        if cfg.momentum > 0:
            b = d if buf is None else cfg.momentum * _f64(buf) + (1.0 - cfg.dampening) * d
            new_buf = b.astype(param.dtype)
            d = d + cfg.momentum * b if cfg.nesterov else b
        new_param = (p - cfg.lr * d).astype(param.dtype)
    return new_param, new_buf


def adam_step(
    param: np.ndarray,
    grad: np.ndarray,
    exp_avg: np.ndarray | None,
    exp_avg_sq: np.ndarray | None,
    step: int,
    cfg: AdamConfig,
) -> tuple[np.ndarray, np.ndarray, np.ndarray, int]:
    """One torch.optim.Adam (AdamW when cfg.decoupled) step. exp_avg and
    exp_avg_sq of None are zeros; step counts the steps already taken.
    Returns (new_param, new_exp_avg, new_exp_avg_sq, step + 1)."""
    _check_param(param)
    _check_gradient(grad, param)
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, (int, np.integer)) or step < 0:
        raise InvalidTensor(f"step must count the steps taken (an integer >= 0), got {step!r}")
    zeros = np.zeros(param.shape)
    m0 = zeros if exp_avg is None else _f64(_check_like("exp_avg", exp_avg, param))
    v0 = zeros if exp_avg_sq is None else _f64(_check_like("exp_avg_sq", exp_avg_sq, param))
    t = int(step) + 1
    b1, b2 = cfg.betas
    shrink = 1.0 - cfg.lr * cfg.weight_decay if cfg.decoupled else 1.0
    coupled_wd = 0.0 if cfg.decoupled else cfg.weight_decay
    step_size = cfg.lr / (1.0 - b1**t)
    bc2_sqrt = math.sqrt(1.0 - b2**t)
    p = _f64(param)
    with np.errstate(all="ignore"):
        g = (-_f64(grad) if cfg.maximize else _f64(grad)) + coupled_wd * p
        m = m0 + (1.0 - b1) * (g - m0)
        v = b2 * v0 + (1.0 - b2) * g * g
        new_p = p * shrink - step_size * m / (np.sqrt(v) / bc2_sqrt + cfg.eps)
    dtype = param.dtype
    return new_p.astype(dtype), m.astype(dtype), v.astype(dtype), t
