"""The TorchScript entry points, called the way RedisAI calls them, against
the numpy references."""

from __future__ import annotations

import re

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from spirtd.aggregation import RULES, Statistic, aggregate, krum, statistic, trimmed_mean
from spirtd.optim import AdamConfig, SgdConfig, adam_step, sgd_step
from spirtd.store.redisai import ENTRY_POINT
from spirtd.store.redisai_scripts import ENTRY_POINTS, SCRIPT
from tests.aggregation.rule_cases import BOUND_CASES, BOUND_VALUES, script_args

SETTINGS = settings(max_examples=15, deadline=None)
# Scripts and references do the same float64 operations, but libtorch may
# order a reduction differently; one ulp of float64 can move the rounding
# to float32 by one ulp.
TOL = {np.float32: {"rtol": 2.5e-7, "atol": 0.0}, np.float64: {"rtol": 1e-13, "atol": 1e-300}}


@pytest.fixture(scope="module")
def cu() -> torch.jit.CompilationUnit:
    return torch.jit.CompilationUnit(SCRIPT)


def run(
    cu, entry: str, arrays: list[np.ndarray], args: list[object], keys: list[str] | None = None
):
    tensors = [torch.from_numpy(np.array(a)) for a in arrays]
    if keys is None:
        keys = [f"k:{i}" for i in range(len(arrays))]
    out = getattr(cu, entry)(tensors, keys, [str(a) for a in args])
    return [t.numpy() for t in (out if isinstance(out, list) else [out])]


def random_inputs(seed: int, n: int, shape: tuple[int, ...], dtype: type) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    return [rng.standard_normal(shape).astype(dtype) for _ in range(n)]


def test_script_has_every_entry_point_with_redisai_signature(cu):
    assert ENTRY_POINTS == (
        "spirt_mean",
        "spirt_median",
        "spirt_trimmed_mean",
        "spirt_krum",
        "spirt_multikrum",
        "spirt_statistic",
        "spirt_sgd",
        "spirt_adam",
    )
    for name in ENTRY_POINTS:
        schema = str(getattr(cu, name).schema)
        assert f"{name}(Tensor[] tensors, str[] keys, str[] args)" in schema


shapes = st.sampled_from([(1,), (7,), (3, 4), (2, 1, 5)])
dtypes = st.sampled_from([np.float32, np.float64])


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 8),
    shape=shapes,
    dtype=dtypes,
    weighted=st.booleans(),
)
def test_scripts_aggregate_like_numpy(cu, seed, n, shape, dtype, weighted):
    inputs = random_inputs(seed, n, shape, dtype)
    rng = np.random.default_rng(seed + 1)
    b = int(rng.integers(0, (n - 1) // 2 + 1))
    cases = [("spirt_mean", [], "mean", {}), ("spirt_median", [], "median", {}),
             ("spirt_trimmed_mean", [b], "trimmed_mean", {"b": b})]  # fmt: skip
    if weighted:
        w = [float(x) for x in rng.random(n)]
        cases.append(("spirt_mean", [repr(x) for x in w], "mean", {"weights": w}))
    for entry, args, rule, options in cases:
        (got,) = run(cu, entry, inputs, args)
        want = aggregate(rule, inputs, **options).value
        assert got.dtype == want.dtype and got.shape == want.shape
        np.testing.assert_allclose(got, want, **TOL[dtype])


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    f=st.integers(0, 3),
    extra=st.integers(0, 3),
    shape=shapes,
    dtype=dtypes,
)
def test_script_krum_like_numpy(cu, seed, f, extra, shape, dtype):
    n = 2 * f + 3 + extra
    inputs = random_inputs(seed, n, shape, dtype)
    for entry, args, rule, options in (("spirt_krum", [f], "krum", {"f": f}),
                                       ("spirt_multikrum", [f, 1], "krum", {"f": f}),
                                       ("spirt_multikrum", [f], "multikrum", {"f": f}),
                                       ("spirt_multikrum", [f, 2], "multikrum", {"f": f, "m": 2})):  # fmt: skip
        got, selected = run(cu, entry, inputs, args)
        want = aggregate(rule, inputs, **options)
        assert selected.dtype == np.int64 and tuple(selected.tolist()) == want.selected
        assert got.dtype == want.value.dtype
        np.testing.assert_allclose(got, want.value, **TOL[dtype])


def test_script_krum_ties_pick_lowest_index(cu):
    inputs = [np.ones(3, np.float32)] * 5
    _, selected = run(cu, "spirt_krum", inputs, [1])
    assert selected.tolist() == [0]
    _, selected = run(cu, "spirt_multikrum", inputs, [1, 1])
    assert selected.tolist() == [0]


sgd_configs = st.builds(
    lambda momentum, dampening, nesterov, wd, maximize: SgdConfig(
        lr=0.05, momentum=momentum, dampening=0.0 if nesterov else dampening,
        nesterov=nesterov and momentum > 0, weight_decay=wd, maximize=maximize),
    st.sampled_from([0.0, 0.9]), st.sampled_from([0.0, 0.3]), st.booleans(),
    st.sampled_from([0.0, 0.01]), st.booleans(),
)  # fmt: skip


def sgd_args(cfg: SgdConfig) -> list[object]:
    return [repr(cfg.lr), repr(cfg.momentum), repr(cfg.dampening), int(cfg.nesterov),
            repr(cfg.weight_decay), int(cfg.maximize)]  # fmt: skip


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), cfg=sgd_configs, shape=shapes, dtype=dtypes)
def test_script_sgd_like_numpy(cu, seed, cfg, shape, dtype):
    param, *grads = random_inputs(seed, 4, shape, dtype)
    buf = None
    for g in grads:
        tensors = [param, g] if buf is None else [param, g, buf]
        out = run(cu, "spirt_sgd", tensors, sgd_args(cfg))
        param, buf = sgd_step(param, g, buf, cfg)
        np.testing.assert_allclose(out[0], param, **TOL[dtype])
        if cfg.momentum > 0:
            assert len(out) == 2
            np.testing.assert_allclose(out[1], buf, **TOL[dtype])
        else:
            assert len(out) == 1 and buf is None


adam_configs = st.builds(
    lambda betas, wd, decoupled, maximize: AdamConfig(
        lr=0.01, betas=betas, weight_decay=wd, decoupled=decoupled, maximize=maximize),
    st.sampled_from([(0.9, 0.999), (0.5, 0.0)]), st.sampled_from([0.0, 0.1]),
    st.booleans(), st.booleans(),
)  # fmt: skip


@SETTINGS
@given(seed=st.integers(0, 2**32 - 1), cfg=adam_configs, shape=shapes, dtype=dtypes)
def test_script_adam_like_numpy(cu, seed, cfg, shape, dtype):
    param, *grads = random_inputs(seed, 4, shape, dtype)
    m = v = None
    step = 0
    args = [repr(cfg.lr), repr(cfg.betas[0]), repr(cfg.betas[1]), repr(cfg.eps),
            repr(cfg.weight_decay), int(cfg.decoupled), int(cfg.maximize)]  # fmt: skip
    for g in grads:
        zeros = np.zeros_like(param)
        tensors = [
            param,
            g,
            zeros if m is None else m,
            zeros if v is None else v,
            np.array([step], np.int64),
        ]
        got = run(cu, "spirt_adam", tensors, args)
        param, m, v, step = adam_step(param, g, m, v, step, cfg)
        for x, y in zip(got[:3], (param, m, v)):
            assert x.dtype == y.dtype and x.shape == y.shape
            np.testing.assert_allclose(x, y, **TOL[dtype])
        assert got[3].dtype == np.int64 and got[3].tolist() == [step]


F = np.zeros(6, np.float32)
NAN = np.array([0, 0, 0, np.nan, 0, 0], np.float32)
SGD = ["0.1", "0", "0", "0", "0", "0"]
ADAM = ["0.001", "0.9", "0.999", "1e-08", "0", "0", "0"]
STEP0 = np.array([0], np.int64)
WGMVS = ["w", "g", "m", "v", "s"]
DIST = "pairwise_squared_distances"
GIVEN = "given:" + DIST

# entry, arrays, args, keys, message (literal)
SCRIPT_ERRORS = [
    ("spirt_mean", [F, F, F, NAN], [], None,
     "input 'k:3' has a non-finite value at element 3; nothing was written"),
    ("spirt_median", [NAN], [], ["grad:3"], "input 'grad:3' has a non-finite value at element 3"),
    ("spirt_krum", [F, F, F, NAN, F], ["1"], None, "input 'k:3' has a non-finite value"),
    ("spirt_multikrum", [F, F, F, NAN, F], ["1", "1"], None, "input 'k:3' has a non-finite value"),
    ("spirt_trimmed_mean", [F, NAN, F], ["1"], None, "input 'k:1' has a non-finite value"),
    ("spirt_mean", [F, np.zeros(5, np.float32)], [], None,
     "input 'k:1' is float32 [5] but input 'k:0' is float32 [6]"),
    ("spirt_mean", [F, np.zeros(6)], [], None,
     "input 'k:1' is float64 [6] but input 'k:0' is float32 [6]"),
    ("spirt_mean", [np.zeros(6, np.int64)], [], None,
     "input 'k:0' has dtype int64; aggregation needs float32 or float64"),
    ("spirt_mean", [], [], None, "aggregation needs at least one input; got 0"),
    ("spirt_mean", [F, F, F], ["1", "1"], None, "weights needs one weight per input (3); got 2"),
    ("spirt_mean", [F, F], ["1", "-1"], None, "weights must be finite and >= 0, got -1"),
    ("spirt_mean", [F, F], ["1", "nan"], None, "weights must be a number, got 'nan'"),
    ("spirt_mean", [F, F], ["0", "0.0"], None, "weights must not all be zero"),
    ("spirt_trimmed_mean", [F] * 4, ["2"], None,
     "trimmed_mean drops b=2 values at each end, so it needs more than 2b=4 inputs; got 4"),
    ("spirt_trimmed_mean", [F] * 4, ["1.5"], None, "b must be an integer >= 0, got '1.5'"),
    ("spirt_median", [F], ["1"], None, "median takes [0] args; got 1"),
    ("spirt_krum", [F] * 5, ["2"], None,
     "krum tolerates f faulty inputs only with n >= 2f+3: f=2 needs at least 7 inputs, got 5"),
    ("spirt_multikrum", [F] * 6, ["2"], None,
     "multikrum tolerates f faulty inputs only with n >= 2f+3: f=2 needs at least 7 inputs, got 6"),
    ("spirt_multikrum", [F] * 7, ["2", "6"], None,
     "multikrum averages m of the n-f best-scored inputs: m=6 is more than n-f=5"),
    ("spirt_multikrum", [F] * 7, ["2", "0"], None, "m must be an integer >= 1, got 0"),
    ("spirt_krum", [F] * 1025, ["1"], None,
     "krum compares every pair of inputs and takes at most 1024; got 1025"),
    ("spirt_multikrum", [F] * 1025, ["1", "1"], None,
     "multikrum compares every pair of inputs and takes at most 1024; got 1025"),
    ("spirt_krum", [F] * 5, ["1", "1"], None, "krum takes [1] args; got 2"),
    ("spirt_krum", [F] * 5 + [np.ones((4, 4))], ["1", GIVEN], None,
     f"given {DIST} must be float64 of shape [5, 5] for 5 inputs; got float64 [4, 4]"),
    ("spirt_multikrum", [F] * 5 + [np.ones((5, 5), np.float32)], ["1", GIVEN], None,
     f"given {DIST} must be float64 of shape [5, 5] for 5 inputs; got float32 [5, 5]"),
    ("spirt_krum", [F] * 5 + [np.full((5, 5), np.inf)], ["1", GIVEN], None, f"given {DIST} must be finite"),
    ("spirt_krum", [F, F, F, NAN, F, np.zeros((5, 5))], ["1", GIVEN], None,
     "input 'k:3' has a non-finite value at element 3"),
    ("spirt_mean", [F, F, F, np.zeros((3, 3))], [GIVEN], None,
     f"rule mean does not need {DIST}, but it was given"),
    ("spirt_trimmed_mean", [F, F, F, np.zeros((3, 3))], ["1", GIVEN], None,
     f"rule trimmed_mean does not need {DIST}, but it was given"),
    ("spirt_statistic", [F, F], ["distances"], None,
     f"unknown statistic 'distances'; known statistics: {DIST}"),
    ("spirt_statistic", [F, NAN], [DIST], None, "input 'k:1' has a non-finite value at element 3"),
    ("spirt_statistic", [F, np.zeros(5, np.float32)], [DIST], None,
     "input 'k:1' is float32 [5] but input 'k:0' is float32 [6]"),
    ("spirt_statistic", [np.array([1e308]), np.array([-1e308])], [DIST], None,
     f"{DIST} overflowed: it is not finite although every input is"),
    ("spirt_statistic", [F] * 1025, [DIST], None,
     f"{DIST} compares every pair of inputs and takes at most 1024; got 1025"),
    ("spirt_statistic", [F], [], None, "spirt_statistic takes [1] args; got 0"),
    ("spirt_sgd", [F, NAN], SGD, ["w", "g"],
     "gradient 'g' has a non-finite value at element 3; nothing was written"),
    ("spirt_sgd", [NAN, F], SGD, ["w", "g"], "parameter 'w' has a non-finite value at element 3"),
    ("spirt_sgd", [F, F], ["0.1", "0", "0", "1", "0", "0"], None,
     "nesterov needs momentum > 0 and dampening 0"),
    ("spirt_sgd", [F, np.zeros(6)], SGD, ["w", "g"],
     "gradient 'g' is float64 [6] but the parameter 'w' is float32 [6]"),
    ("spirt_sgd", [F, F], ["-0.1", "0", "0", "0", "0", "0"], None,
     "lr must be finite and >= 0, got -0.1"),
    ("spirt_sgd", [F, F], ["0.1", "0", "0", "yes", "0", "0"], None,
     "nesterov must be 0 or 1, got 'yes'"),
    ("spirt_sgd", [F, F], ["0.1"], None, "spirt_sgd takes [6] args; got 1"),
    ("spirt_sgd", [F], SGD, None,
     "spirt_sgd takes [param, grad] or [param, grad, buf]; got 1 tensors"),
    ("spirt_adam", [F, NAN, F, F, STEP0], ADAM, WGMVS,
     "gradient 'g' has a non-finite value at element 3"),
    ("spirt_adam", [F, F, NAN, F, STEP0], ADAM, WGMVS,
     "exp_avg 'm' has a non-finite value at element 3"),
    ("spirt_adam", [F, F, F, np.zeros(2, np.float32), STEP0], ADAM, WGMVS,
     "exp_avg_sq 'v' is float32 [2] but the parameter 'w' is float32 [6]"),
    ("spirt_adam", [F, F, F, F, np.array([-1], np.int64)], ADAM, WGMVS,
     "step 's' must be an int64 tensor of shape [1] holding a step count"),
    ("spirt_adam", [F, F, F, F, np.array([0.0])], ADAM, WGMVS,
     "step 's' must be an int64 tensor"),
    ("spirt_adam", [F, F, F, F, STEP0], ["0.001", "1.0", "0.999", "1e-08", "0", "0", "0"], None,
     "beta1 and beta2 must be in [0, 1)"),
    ("spirt_adam", [F, F, F, F], ADAM, None,
     "spirt_adam takes [param, grad] and the state tensors the mask gives (111: 5 tensors); got 4 tensors"),
    ("spirt_adam", [F, F], ADAM + ["1x0"], None, "the given-state mask must be three 0/1 digits, got '1x0'"),
    ("spirt_adam", [F, F], ADAM + ["100"], None,
     "the state tensors the mask gives (100: 3 tensors); got 2 tensors"),
]  # fmt: skip


@pytest.mark.parametrize("entry, arrays, args, keys, message", SCRIPT_ERRORS)
def test_scripts_refuse_bad_inputs_naming_keys(cu, entry, arrays, args, keys, message):
    with pytest.raises((torch.jit.Error, RuntimeError), match=re.escape(message)):
        run(cu, entry, arrays, args, keys)


@pytest.mark.parametrize("n", [1, 2, 6])
@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_script_statistic_like_numpy(cu, n, dtype):
    inputs = random_inputs(n, n, (3, 5), dtype)
    (got,) = run(cu, "spirt_statistic", inputs, [DIST])
    assert got.dtype == np.float64 and got.shape == (n, n)
    np.testing.assert_allclose(got, statistic(Statistic.PAIRWISE_SQUARED_DISTANCES, inputs), rtol=1e-12)


@pytest.mark.parametrize("entry, args", [("spirt_krum", ["1"]), ("spirt_multikrum", ["1", "2"])])
def test_script_krum_given_its_own_statistic_is_unchanged(cu, entry, args):
    inputs = random_inputs(3, 6, (11,), np.float32)
    (dist,) = run(cu, "spirt_statistic", inputs, [DIST])
    before = dist.copy()
    plain = run(cu, entry, inputs, args)
    given = run(cu, entry, [*inputs, dist], [*args, GIVEN])
    assert all(a.tobytes() == b.tobytes() for a, b in zip(plain, given))
    assert (dist == before).all()  # the given tensor is not written


def test_script_messages_fall_back_to_indices_without_keys(cu):
    with pytest.raises(
        (torch.jit.Error, RuntimeError), match=re.escape("input 1 has a non-finite value")
    ):
        cu.spirt_mean([torch.zeros(2), torch.tensor([0.0, float("inf")])], [], [])


def test_scripts_do_not_modify_inputs(cu):
    inputs = random_inputs(7, 5, (3,), np.float32)
    tensors = [torch.from_numpy(x.copy()) for x in inputs]
    cu.spirt_krum(tensors, [], ["1"])
    cu.spirt_multikrum(tensors, [], ["1", "2"])
    cu.spirt_trimmed_mean(tensors, [], ["1"])
    cu.spirt_sgd(tensors[:3], [], ["0.1", "0.9", "0", "1", "0.1", "1"])
    cu.spirt_adam(
        tensors[:4] + [torch.tensor([2])], [], ["0.1", "0.9", "0.99", "1e-8", "0.1", "1", "0"]
    )
    for t, x in zip(tensors, inputs):
        np.testing.assert_array_equal(t.numpy(), x)


def test_script_sgd_ignores_buffer_without_momentum(cu):
    g = np.ones(6, np.float32)
    out = run(cu, "spirt_sgd", [F, g, np.full(6, 5.0)], SGD)
    assert len(out) == 1
    np.testing.assert_array_equal(out[0], sgd_step(F, g, None, SgdConfig(lr=0.1))[0])


def test_script_adam_starts_missing_state_at_zero(cu):
    """The first step gives no state ("000"); missing pieces start at zero,
    as SPIRT.ADAM creates a state key that does not exist yet."""
    param, g = random_inputs(3, 2, (5,), np.float32)
    full = run(cu, "spirt_adam", [param, g, np.zeros(5, np.float32), np.zeros(5, np.float32), STEP0], ADAM)
    for mask, state in (("000", []), ("110", [np.zeros(5, np.float32)] * 2), ("001", [STEP0])):
        got = run(cu, "spirt_adam", [param, g, *state], ADAM + [mask])
        for x, y in zip(got, full):
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("f", BOUND_VALUES)
def test_script_bound_functions_are_the_python_ones(cu, f):
    assert cu._krum_min_inputs(f) == krum.min_inputs(f)
    assert cu._trimmed_mean_min_inputs(f) == trimmed_mean.min_inputs(f)


@pytest.mark.parametrize("rule, counts", BOUND_CASES, ids=str)
def test_scripts_accept_exactly_the_python_bound(cu, rule, counts):
    n = RULES[rule].min_inputs(counts)
    inputs = random_inputs(n, n, (3,), np.float32)
    run(cu, ENTRY_POINT[rule], inputs, script_args(rule, counts))
    if n > 1:
        with pytest.raises((torch.jit.Error, RuntimeError), match=f"{rule} .*got {n - 1}$"):
            run(cu, ENTRY_POINT[rule], inputs[:-1], script_args(rule, counts))
