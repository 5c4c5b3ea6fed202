"""SPIRT.SGD and SPIRT.ADAM against torch.optim over several steps, their
state keys, and their errors (after which nothing has changed)."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pytest
import redis
import torch

from .helpers import error_of, get, jobs_queued, put, snapshot

STEPS = 5
SMALL = 257  # elements: inline
LARGE = 100_003  # elements: the worker threads (400 KB per FLOAT tensor)
RTOL = {"FLOAT": 1e-5, "DOUBLE": 1e-10}
NP = {"FLOAT": np.float32, "DOUBLE": np.float64}
TORCH = {"FLOAT": torch.float32, "DOUBLE": torch.float64}


@pytest.fixture
def rng() -> np.random.Generator:
    return np.random.default_rng(5)


def assert_close(got: np.ndarray, expected, dtype: str, what: str) -> None:
    expected = np.asarray(expected)
    scale = float(np.max(np.abs(expected))) or 1.0
    np.testing.assert_allclose(
        got, expected, rtol=RTOL[dtype], atol=RTOL[dtype] * scale * 1e-2, err_msg=what
    )


# ---- SGD ----


@dataclass(frozen=True)
class SgdCase:
    lr: float = 0.1
    momentum: float = 0.0
    dampening: float = 0.0
    nesterov: bool = False
    weight_decay: float = 0.0
    maximize: bool = False

    def args(self, buffer: str = "buf") -> list:
        out: list = ["LR", self.lr]
        if self.momentum:
            out += ["MOMENTUM", self.momentum, "BUFFER", buffer]
        if self.dampening:
            out += ["DAMPENING", self.dampening]
        if self.nesterov:
            out.append("NESTEROV")
        if self.weight_decay:
            out += ["WEIGHT_DECAY", self.weight_decay]
        if self.maximize:
            out.append("MAXIMIZE")
        return out

    def torch_optimizer(self, p: torch.Tensor) -> torch.optim.Optimizer:
        return torch.optim.SGD(
            [p],
            lr=self.lr,
            momentum=self.momentum,
            dampening=self.dampening,
            nesterov=self.nesterov,
            weight_decay=self.weight_decay,
            maximize=self.maximize,
        )


SGD_CASES = {
    "plain": SgdCase(),
    "momentum": SgdCase(momentum=0.9),
    "dampening": SgdCase(momentum=0.9, dampening=0.3),
    "nesterov": SgdCase(lr=0.05, momentum=0.8, nesterov=True),
    "weight-decay": SgdCase(weight_decay=0.01),
    "maximize": SgdCase(maximize=True),
    "everything": SgdCase(lr=0.02, momentum=0.7, nesterov=True, weight_decay=0.05, maximize=True),
    "dampening-decay-maximize": SgdCase(
        lr=0.3, momentum=0.5, dampening=0.5, weight_decay=0.1, maximize=True
    ),
    "zero-lr": SgdCase(lr=0.0, momentum=0.9),
}


def run_sgd(r, rng, case: SgdCase, dtype: str, nelem: int) -> None:
    p0 = rng.standard_normal(nelem).astype(NP[dtype])
    put(r, "p", p0)
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = case.torch_optimizer(p)
    for step in range(STEPS):
        g = rng.standard_normal(nelem).astype(NP[dtype])
        put(r, "g", g)
        if step == 0 and case.momentum:
            assert r.exists("buf") == 0
        assert r.execute_command("SPIRT.SGD", "p", "g", *case.args()) == b"OK"
        p.grad = torch.tensor(g)
        opt.step()
        assert_close(get(r, "p"), p.detach().numpy(), dtype, f"param after step {step + 1}")
        if case.momentum:
            buf = get(r, "buf")
            assert buf.dtype == p0.dtype and buf.shape == p0.shape
            assert_close(
                buf, opt.state[p]["momentum_buffer"].numpy(), dtype, f"buffer after step {step + 1}"
            )
        else:
            assert r.exists("buf") == 0
        assert get(r, "g").tobytes() == g.tobytes()


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("case_id", SGD_CASES)
def test_sgd_inline_matches_torch(sr, rng, case_id, dtype):
    before = jobs_queued(sr)
    run_sgd(sr, rng, SGD_CASES[case_id], dtype, SMALL)
    assert jobs_queued(sr) == before


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("case_id", ["plain", "nesterov", "everything"])
def test_sgd_on_the_pool_matches_torch(sr, rng, case_id, dtype):
    before = jobs_queued(sr)
    run_sgd(sr, rng, SGD_CASES[case_id], dtype, LARGE)
    assert jobs_queued(sr) == before + STEPS


def test_sgd_first_step_sets_buffer_to_the_gradient(sr):
    """torch initialises the momentum buffer to d_p (no dampening) on the first step."""
    sr.execute_command("AI.TENSORSET", "p", "DOUBLE", 3, "VALUES", 1, 2, 3)
    sr.execute_command("AI.TENSORSET", "g", "DOUBLE", 3, "VALUES", 0.5, -1, 4)
    sr.execute_command(
        "SPIRT.SGD",
        "p",
        "g",
        "LR",
        0.5,
        "MOMENTUM",
        0.9,
        "DAMPENING",
        0.5,
        "WEIGHT_DECAY",
        0.5,
        "BUFFER",
        "b",
    )
    d_p = [0.5 + 0.5 * 1, -1 + 0.5 * 2, 4 + 0.5 * 3]
    assert sr.execute_command("AI.TENSORGET", "b", "VALUES") == d_p
    assert sr.execute_command("AI.TENSORGET", "p", "VALUES") == [
        1 - 0.5 * d_p[0],
        2 - 0.5 * d_p[1],
        3 - 0.5 * d_p[2],
    ]


def test_sgd_gradient_cannot_be_the_parameter(sr):
    sr.execute_command("AI.TENSORSET", "p", "DOUBLE", 2, "VALUES", 2, -4)
    with pytest.raises(redis.ResponseError, match="used for two roles"):
        sr.execute_command("SPIRT.SGD", "p", "p", "LR", 0.25)
    assert sr.execute_command("AI.TENSORGET", "p", "VALUES") == [2.0, -4.0]


# ---- Adam / AdamW ----


@dataclass(frozen=True)
class AdamCase:
    lr: float = 1e-2
    beta1: float | None = None
    beta2: float | None = None
    eps: float | None = None
    weight_decay: float = 0.0
    decoupled: bool = False
    maximize: bool = False
    extra: tuple = field(default_factory=tuple)

    def args(self) -> list:
        out: list = ["LR", self.lr, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s"]
        for name, value in (("BETA1", self.beta1), ("BETA2", self.beta2), ("EPS", self.eps)):
            if value is not None:
                out += [name, value]
        if self.weight_decay:
            out += ["WEIGHT_DECAY", self.weight_decay]
        if self.decoupled:
            out.append("DECOUPLED")
        if self.maximize:
            out.append("MAXIMIZE")
        return out

    def torch_optimizer(self, p: torch.Tensor) -> torch.optim.Optimizer:
        kw = dict(
            lr=self.lr,
            betas=(
                0.9 if self.beta1 is None else self.beta1,
                0.999 if self.beta2 is None else self.beta2,
            ),
            eps=1e-8 if self.eps is None else self.eps,
            weight_decay=self.weight_decay,
            maximize=self.maximize,
        )
        return (torch.optim.AdamW if self.decoupled else torch.optim.Adam)([p], **kw)


ADAM_CASES = {
    "adam": AdamCase(),
    "betas-eps": AdamCase(lr=0.05, beta1=0.8, beta2=0.99, eps=1e-6),
    "beta1-zero": AdamCase(beta1=0.0, beta2=0.5),
    "weight-decay": AdamCase(weight_decay=0.1),
    "adamw": AdamCase(weight_decay=0.1, decoupled=True),
    "maximize": AdamCase(maximize=True),
    "adamw-maximize": AdamCase(lr=0.1, weight_decay=0.3, decoupled=True, maximize=True, eps=1e-3),
    "decoupled-without-decay": AdamCase(decoupled=True),
}


def run_adam(r, rng, case: AdamCase, dtype: str, nelem: int) -> None:
    p0 = rng.standard_normal(nelem).astype(NP[dtype])
    put(r, "p", p0)
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = case.torch_optimizer(p)
    for step in range(1, STEPS + 1):
        g = rng.standard_normal(nelem).astype(NP[dtype])
        put(r, "g", g)
        if step == 1:
            assert r.exists("m", "v", "s") == 0
        assert r.execute_command("SPIRT.ADAM", "p", "g", *case.args()) == step
        p.grad = torch.tensor(g)
        opt.step()
        state = opt.state[p]
        assert_close(get(r, "p"), p.detach().numpy(), dtype, f"param after step {step}")
        assert_close(get(r, "m"), state["exp_avg"].numpy(), dtype, f"exp_avg after step {step}")
        assert_close(
            get(r, "v"), state["exp_avg_sq"].numpy(), dtype, f"exp_avg_sq after step {step}"
        )
        assert r.execute_command("AI.TENSORGET", "s", "META", "VALUES") == [
            b"dtype",
            b"INT64",
            b"shape",
            [1],
            b"values",
            [step],
        ]
        assert int(state["step"]) == step
        assert get(r, "g").tobytes() == g.tobytes()


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("case_id", ADAM_CASES)
def test_adam_inline_matches_torch(sr, rng, case_id, dtype):
    before = jobs_queued(sr)
    run_adam(sr, rng, ADAM_CASES[case_id], dtype, SMALL)
    assert jobs_queued(sr) == before


@pytest.mark.parametrize("dtype", ["FLOAT", "DOUBLE"])
@pytest.mark.parametrize("case_id", ["adam", "adamw-maximize"])
def test_adam_on_the_pool_matches_torch(sr, rng, case_id, dtype):
    before = jobs_queued(sr)
    run_adam(sr, rng, ADAM_CASES[case_id], dtype, LARGE)
    assert jobs_queued(sr) == before + STEPS


@pytest.mark.parametrize("threads", [1, 2])
def test_optimizers_with_inline_bytes_zero_match_torch(start_spirt, rng, threads):
    r = start_spirt(inline_bytes=0, module_threads=threads).client()
    run_sgd(r, rng, SGD_CASES["everything"], "FLOAT", 70_001)
    r.flushall()
    run_adam(r, rng, ADAM_CASES["adamw-maximize"], "FLOAT", 3)
    assert jobs_queued(r) == 2 * STEPS


def test_adam_continues_from_an_existing_step(sr, rng):
    """A STEP key holding 9: the step taken is the 10th (bias corrections use 10)."""
    p0, m0, g = (rng.standard_normal(50).astype(np.float32) for _ in range(3))
    v0 = rng.random(50).astype(np.float32)
    put(sr, "p", p0)
    put(sr, "m", m0)
    put(sr, "v", v0)
    put(sr, "g", g)
    sr.execute_command("AI.TENSORSET", "s", "INT64", 1, "VALUES", 9)
    assert (
        sr.execute_command(
            "SPIRT.ADAM", "p", "g", "LR", 0.01, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s"
        )
        == 10
    )
    p = torch.nn.Parameter(torch.tensor(p0))
    opt = torch.optim.Adam([p], lr=0.01)
    opt.state[p] = {
        "step": torch.tensor(9.0),
        "exp_avg": torch.tensor(m0),
        "exp_avg_sq": torch.tensor(v0),
    }
    p.grad = torch.tensor(g)
    opt.step()
    assert_close(get(sr, "p"), p.detach().numpy(), "FLOAT", "param")
    assert_close(get(sr, "m"), opt.state[p]["exp_avg"].numpy(), "FLOAT", "exp_avg")
    assert sr.execute_command("AI.TENSORGET", "s", "VALUES") == [10]


def test_adam_state_keys_are_created_like_the_parameter(sr):
    sr.execute_command("AI.TENSORSET", "p", "DOUBLE", 2, 3)
    sr.execute_command("AI.TENSORSET", "g", "DOUBLE", 2, 3, "VALUES", 1, 2, 3, 4, 5, 6)
    sr.execute_command(
        "SPIRT.ADAM", "p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s"
    )
    for key in ("m", "v"):
        assert sr.execute_command("AI.TENSORGET", key, "META") == [
            b"dtype",
            b"DOUBLE",
            b"shape",
            [2, 3],
        ]
    assert sr.execute_command("AI.TENSORGET", "s", "META") == [b"dtype", b"INT64", b"shape", [1]]


def test_optimizer_getkeys_reports_every_key(sr):
    assert sr.command_getkeys(
        "SPIRT.SGD", "p", "g", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "b", "NESTEROV"
    ) == ["p", "g", "b"]
    assert sr.command_getkeys(
        "SPIRT.ADAM",
        "p",
        "g",
        "STEP",
        "s",
        "LR",
        0.1,
        "EXP_AVG",
        "m",
        "EXP_AVG_SQ",
        "v",
        "DECOUPLED",
    ) == ["p", "g", "s", "m", "v"]


# ---- errors: exact text, and nothing changed ----

TWO_ROLES = (
    "key '{}' is used for two roles; the parameter, the gradient and each state tensor need their own key"
)
ADAM_KEYS = ["EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s"]

SGD_ERRORS = [
    pytest.param(["p", "g", "LR"], "wrong number of arguments for 'SPIRT.SGD' command", id="arity"),
    pytest.param(["p", "g", "MAXIMIZE", "NESTEROV"], "LR is required", id="no-lr"),
    pytest.param(
        ["p", "g", "MOMENTUM", 0.9, "BUFFER", "buf"], "LR is required", id="no-lr-momentum"
    ),
    pytest.param(["p", "g", "LR", "x"], "LR must be a finite number", id="lr-word"),
    pytest.param(["p", "g", "LR", "nan"], "LR must be a finite number", id="lr-nan"),
    pytest.param(["p", "g", "LR", "inf"], "LR must be a finite number", id="lr-inf"),
    pytest.param(["p", "g", "LR", "1e400"], "LR must be a finite number", id="lr-overflow"),
    pytest.param(
        ["p", "g", "LR", -0.1],
        "LR, MOMENTUM, DAMPENING and WEIGHT_DECAY must be >= 0",
        id="lr-negative",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", -0.5, "BUFFER", "buf"],
        "LR, MOMENTUM, DAMPENING and WEIGHT_DECAY must be >= 0",
        id="momentum-negative",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "DAMPENING", -1],
        "LR, MOMENTUM, DAMPENING and WEIGHT_DECAY must be >= 0",
        id="dampening-negative",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "WEIGHT_DECAY", -1],
        "LR, MOMENTUM, DAMPENING and WEIGHT_DECAY must be >= 0",
        id="decay-negative",
    ),
    pytest.param(["p", "g", "LR", 0.1, "LR", 0.2], "option LR given twice", id="lr-twice"),
    pytest.param(
        ["p", "g", "LR", 0.1, "maximize", "MAXIMIZE"],
        "option MAXIMIZE given twice",
        id="flag-twice",
    ),
    pytest.param(["p", "g", "LR", 0.1, "FOO"], "unknown option 'FOO'", id="unknown-option"),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "m"], "unknown option 'EXP_AVG'", id="adam-option"
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "y" * 40], f"unknown option '{'y' * 32}'", id="long-option-cut"
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM"], "option MOMENTUM needs a value", id="momentum-no-value"
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER"],
        "option BUFFER needs a value",
        id="buffer-no-value",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", 0.9],
        "MOMENTUM needs a BUFFER key for its state",
        id="momentum-no-buffer",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "BUFFER", "buf"],
        "BUFFER is only used with MOMENTUM > 0",
        id="buffer-no-momentum",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", 0, "BUFFER", "buf"],
        "BUFFER is only used with MOMENTUM > 0",
        id="buffer-momentum-0",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "NESTEROV"],
        "NESTEROV needs MOMENTUM > 0 and DAMPENING 0",
        id="nesterov-no-momentum",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "buf", "NESTEROV", "DAMPENING", 0.1],
        "NESTEROV needs MOMENTUM > 0 and DAMPENING 0",
        id="nesterov-dampening",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "p"],
        TWO_ROLES.format("p"),
        id="buffer-is-param",
    ),
    pytest.param(
        ["missing", "g", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "missing"],
        TWO_ROLES.format("missing"),
        id="roles-before-keys",
    ),
    pytest.param(
        ["missing", "g", "LR", 0.1], "parameter tensor 'missing' does not exist", id="param-missing"
    ),
    pytest.param(
        ["p", "missing", "LR", 0.1], "gradient tensor 'missing' does not exist", id="grad-missing"
    ),
    pytest.param(
        ["text", "g", "LR", 0.1],
        "WRONGTYPE parameter 'text' holds a value that is not a tensor",
        id="param-string",
    ),
    pytest.param(
        ["p", "text", "LR", 0.1],
        "WRONGTYPE gradient 'text' holds a value that is not a tensor",
        id="grad-string",
    ),
    pytest.param(
        ["i32", "g", "LR", 0.1],
        "parameter 'i32' has dtype INT32; optimizer steps need FLOAT or DOUBLE",
        id="param-int",
    ),
    pytest.param(
        ["p", "g3", "LR", 0.1],
        "gradient 'g3' is FLOAT [3] but the parameter is FLOAT [4]",
        id="grad-shape",
    ),
    pytest.param(
        ["p", "gd", "LR", 0.1],
        "gradient 'gd' is DOUBLE [4] but the parameter is FLOAT [4]",
        id="grad-dtype",
    ),
    pytest.param(
        ["p", "i32", "LR", 0.1],
        "gradient 'i32' is INT32 [4] but the parameter is FLOAT [4]",
        id="grad-int",
    ),
    pytest.param(
        ["p", "g22", "LR", 0.1],
        "gradient 'g22' is FLOAT [2, 2] but the parameter is FLOAT [4]",
        id="grad-rank",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "g3"],
        "momentum buffer 'g3' is FLOAT [3] but the parameter is FLOAT [4]",
        id="buffer-shape",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "text"],
        "WRONGTYPE momentum buffer 'text' holds a value that is not a tensor",
        id="buffer-string",
    ),
    pytest.param(
        ["p", "gnan", "LR", 0.1],
        "gradient 'gnan' has a non-finite value at element 3; nothing was written",
        id="grad-nan",
    ),
    pytest.param(
        ["p", "ginf", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "buf"],
        "gradient 'ginf' has a non-finite value at element 0; nothing was written",
        id="grad-inf-momentum",
    ),
    pytest.param(
        ["p", "ginf", "LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "newbuf", "MAXIMIZE"],
        "gradient 'ginf' has a non-finite value at element 0; nothing was written",
        id="grad-inf-new-buffer",
    ),
]

ADAM_ERRORS = [
    pytest.param(
        ["p", "g", "LR"], "wrong number of arguments for 'SPIRT.ADAM' command", id="arity"
    ),
    pytest.param(
        ["p", "g", "LR", 0.1], "EXP_AVG, EXP_AVG_SQ and STEP keys are required", id="no-state-keys"
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v"],
        "EXP_AVG, EXP_AVG_SQ and STEP keys are required",
        id="no-step",
    ),
    pytest.param(["p", "g", *ADAM_KEYS], "LR is required", id="no-lr"),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "BETA1", 1],
        "BETA1 and BETA2 must be in [0, 1)",
        id="beta1-one",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "BETA2", 1],
        "BETA1 and BETA2 must be in [0, 1)",
        id="beta2-one",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "BETA1", -0.1],
        "BETA1 and BETA2 must be in [0, 1)",
        id="beta1-negative",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "BETA2", 1.5],
        "BETA1 and BETA2 must be in [0, 1)",
        id="beta2-big",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "BETA1", "nan"],
        "BETA1 must be a finite number",
        id="beta1-nan",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "EPS", -1e-8],
        "LR, EPS and WEIGHT_DECAY must be >= 0",
        id="eps-negative",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", -1], "LR, EPS and WEIGHT_DECAY must be >= 0", id="lr-negative"
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "WEIGHT_DECAY", -1],
        "LR, EPS and WEIGHT_DECAY must be >= 0",
        id="decay-negative",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "NESTEROV"], "unknown option 'NESTEROV'", id="sgd-option"
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "DECOUPLED", "decoupled"],
        "option DECOUPLED given twice",
        id="flag-twice",
    ),
    pytest.param(
        ["p", "g", *ADAM_KEYS, "LR", 0.1, "STEP", "s2"], "option STEP given twice", id="key-twice"
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP"],
        "option STEP needs a value",
        id="step-no-value",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "m", "STEP", "s"],
        TWO_ROLES.format("m"),
        id="m-is-v",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "p"],
        TWO_ROLES.format("p"),
        id="step-is-param",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "p", "EXP_AVG_SQ", "v", "STEP", "s"],
        TWO_ROLES.format("p"),
        id="m-is-param",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "s", "STEP", "s"],
        TWO_ROLES.format("s"),
        id="v-is-step",
    ),
    pytest.param(
        ["missing", "g", *ADAM_KEYS, "LR", 0.1],
        "parameter tensor 'missing' does not exist",
        id="param-missing",
    ),
    pytest.param(
        ["p", "missing", *ADAM_KEYS, "LR", 0.1],
        "gradient tensor 'missing' does not exist",
        id="grad-missing",
    ),
    pytest.param(
        ["i32", "g", *ADAM_KEYS, "LR", 0.1],
        "parameter 'i32' has dtype INT32; optimizer steps need FLOAT or DOUBLE",
        id="param-int",
    ),
    pytest.param(
        ["p", "gd", *ADAM_KEYS, "LR", 0.1],
        "gradient 'gd' is DOUBLE [4] but the parameter is FLOAT [4]",
        id="grad-dtype",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "g3", "EXP_AVG_SQ", "v", "STEP", "s"],
        "EXP_AVG 'g3' is FLOAT [3] but the parameter is FLOAT [4]",
        id="m-shape",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "gd", "STEP", "s"],
        "EXP_AVG_SQ 'gd' is DOUBLE [4] but the parameter is FLOAT [4]",
        id="v-dtype",
    ),
    pytest.param(
        ["p", "g", "LR", 0.1, "EXP_AVG", "text", "EXP_AVG_SQ", "v", "STEP", "s"],
        "WRONGTYPE EXP_AVG 'text' holds a value that is not a tensor",
        id="m-string",
    ),
    *[
        pytest.param(
            ["p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", key],
            f"STEP '{key}' must be an INT64 tensor of shape [1] holding a step count",
            id=f"step-{key}",
        )
        for key in ("s_float", "s_long", "s_negative", "s_max", "text")
    ],
    pytest.param(
        ["p", "gnan", *ADAM_KEYS, "LR", 0.1],
        "gradient 'gnan' has a non-finite value at element 3; nothing was written",
        id="grad-nan",
    ),
    pytest.param(
        ["p", "ginf", "LR", 0.1, "EXP_AVG", "m2", "EXP_AVG_SQ", "v2", "STEP", "s2", "MAXIMIZE"],
        "gradient 'ginf' has a non-finite value at element 0; nothing was written",
        id="grad-inf-fresh-state",
    ),
]


@pytest.fixture
def optim_keys(sr) -> list[str]:
    """Tensors every error case may name; returns all key names (some absent)."""
    sr.execute_command("AI.TENSORSET", "p", "FLOAT", 4, "VALUES", 1, 2, 3, 4)
    sr.execute_command("AI.TENSORSET", "g", "FLOAT", 4, "VALUES", 0.5, 0.25, -1, 2)
    sr.execute_command("AI.TENSORSET", "buf", "FLOAT", 4, "VALUES", 1, 1, 1, 1)
    sr.execute_command("AI.TENSORSET", "m", "FLOAT", 4, "VALUES", 0.1, 0.1, 0.1, 0.1)
    sr.execute_command("AI.TENSORSET", "v", "FLOAT", 4, "VALUES", 0.2, 0.2, 0.2, 0.2)
    sr.execute_command("AI.TENSORSET", "s", "INT64", 1, "VALUES", 3)
    sr.execute_command("AI.TENSORSET", "s_float", "FLOAT", 1, "VALUES", 3)
    sr.execute_command("AI.TENSORSET", "s_long", "INT64", 2, "VALUES", 3, 3)
    sr.execute_command("AI.TENSORSET", "s_negative", "INT64", 1, "VALUES", -1)
    sr.execute_command("AI.TENSORSET", "s_max", "INT64", 1, "VALUES", 2**63 - 1)
    sr.execute_command("AI.TENSORSET", "gd", "DOUBLE", 4)
    sr.execute_command("AI.TENSORSET", "g3", "FLOAT", 3)
    sr.execute_command("AI.TENSORSET", "g22", "FLOAT", 2, 2)
    sr.execute_command("AI.TENSORSET", "i32", "INT32", 4)
    sr.execute_command(
        "AI.TENSORSET",
        "gnan",
        "FLOAT",
        4,
        "BLOB",
        np.array([1, 2, 3, np.nan], np.float32).tobytes(),
    )
    sr.execute_command("AI.TENSORSET", "ginf", "FLOAT", 4, "VALUES", "-inf", 1, 1, "inf")
    sr.set("text", "not a tensor")
    return [k.decode() for k in sr.keys()] + ["missing", "newbuf", "m2", "v2", "s2"]


@pytest.mark.parametrize("args,message", SGD_ERRORS)
def test_sgd_error_changes_nothing(sr, optim_keys, args, message):
    before = snapshot(sr, optim_keys)
    assert error_of(sr, "SPIRT.SGD", *args) == message
    assert snapshot(sr, optim_keys) == before


@pytest.mark.parametrize("args,message", ADAM_ERRORS)
def test_adam_error_changes_nothing(sr, optim_keys, args, message):
    before = snapshot(sr, optim_keys)
    assert error_of(sr, "SPIRT.ADAM", *args) == message
    assert snapshot(sr, optim_keys) == before


def test_non_finite_gradient_on_the_pool_changes_nothing(sr, rng):
    p = rng.standard_normal(LARGE).astype(np.float32)
    g = rng.standard_normal(LARGE).astype(np.float32)
    g[LARGE - 2] = np.nan
    put(sr, "p", p)
    put(sr, "g", g)
    put(sr, "m", p)
    keys = ["p", "g", "m", "v", "s", "buf"]
    before = snapshot(sr, keys)
    done = jobs_queued(sr)
    message = f"gradient 'g' has a non-finite value at element {LARGE - 2}; nothing was written"
    assert (
        error_of(sr, "SPIRT.SGD", "p", "g", "LR", 0.1, "MOMENTUM", 0.5, "BUFFER", "buf") == message
    )
    assert (
        error_of(
            sr, "SPIRT.ADAM", "p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s"
        )
        == message
    )
    assert snapshot(sr, keys) == before
    assert jobs_queued(sr) == done + 2


@pytest.mark.parametrize(
    "command,args",
    [
        ("SPIRT.SGD", ["LR", 0.1, "MOMENTUM", 0.9, "BUFFER", "g"]),
        ("SPIRT.ADAM", ["LR", 0.1, "EXP_AVG", "g", "EXP_AVG_SQ", "v", "STEP", "s"]),
        ("SPIRT.ADAM", ["LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "g", "STEP", "s"]),
    ],
    ids=["sgd-buffer", "adam-exp-avg", "adam-exp-avg-sq"],
)
def test_gradient_key_cannot_also_be_a_state_key(sr, optim_keys, command, args):
    """The gradient is an input the caller owns; naming it as a state key
    would silently overwrite it with optimizer state. One key, one role."""
    before = snapshot(sr, optim_keys)
    message = error_of(sr, command, "p", "g", *args)
    assert "two roles" in message
    assert snapshot(sr, optim_keys) == before


def test_adam_refuses_a_step_counter_of_another_shape(sr, optim_keys):
    """STEP must be INT64 of shape [1], as the error says; a [1, 1] tensor
    holds one count too, but the step would silently reshape it."""
    sr.execute_command("AI.TENSORSET", "s11", "INT64", 1, 1, "VALUES", 3)
    before = snapshot(sr, optim_keys + ["s11"])
    assert error_of(
        sr, "SPIRT.ADAM", "p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s11"
    ) == ("STEP 's11' must be an INT64 tensor of shape [1] holding a step count")
    assert snapshot(sr, optim_keys + ["s11"]) == before


def test_adam_with_max_tensor_bytes_below_the_step_counter(start_redis):
    """MAX_TENSOR_BYTES 4 allows FLOAT [1] parameters but not the 8-byte
    INT64 step counter: the step must fail cleanly, not crash the server."""
    r = start_redis(max_tensor_bytes=4).client()
    r.execute_command("AI.TENSORSET", "p", "FLOAT", 1, "VALUES", 1)
    r.execute_command("AI.TENSORSET", "g", "FLOAT", 1, "VALUES", 1)
    try:
        r.execute_command(
            "SPIRT.ADAM", "p", "g", "LR", 0.1, "EXP_AVG", "m", "EXP_AVG_SQ", "v", "STEP", "s"
        )
    except Exception as exc:  # an error reply is fine; a dead server is not
        assert "MAX_TENSOR_BYTES" in str(exc)
    assert r.ping()
