"""Properties every rule keeps on random data: inputs untouched, order of
inputs irrelevant where it should be, robustness to far-away faulty inputs."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from spirtd.aggregation import aggregate

SETTINGS = settings(max_examples=100, deadline=None)


def random_inputs(seed: int, n: int, d: int, dtype: type) -> list[np.ndarray]:
    rng = np.random.default_rng(seed)
    scale = 10.0 ** rng.integers(-3, 4)
    return [(scale * rng.standard_normal(d)).astype(dtype) for _ in range(n)]


def rule_options(rule: str, n: int, f: int) -> dict:
    """Valid options of a rule for n inputs, with f as large as allowed
    (at most the f asked for)."""
    f_max = (n - 3) // 2
    return {
        "mean": {},
        "median": {},
        "trimmed_mean": {"b": min(f, (n - 1) // 2)},
        "krum": {"f": min(f, f_max)},
        "multikrum": {"f": min(f, f_max)},
    }[rule]


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 9),
    d=st.integers(0, 6),
    f=st.integers(0, 3),
    dtype=st.sampled_from([np.float32, np.float64]),
    rule=st.sampled_from(["mean", "median", "trimmed_mean", "krum", "multikrum"]),
    weighted=st.booleans(),
)
def test_aggregate_does_not_modify_inputs(seed, n, d, f, dtype, rule, weighted):
    if rule in ("krum", "multikrum") and n < 3:
        n = 3
    inputs = random_inputs(seed, n, d, dtype)
    before = [x.copy() for x in inputs]
    options = rule_options(rule, n, f)
    if rule == "mean" and weighted:
        weights = [float(k + 1) for k in range(n)]
        options["weights"] = weights
    out = aggregate(rule, inputs, **options)
    for x, y in zip(inputs, before):
        np.testing.assert_array_equal(x, y)
        assert x.dtype == y.dtype
    assert out.value.shape == (d,) and out.value.dtype == dtype
    for x in inputs:
        x.flags.writeable = False  # read-only inputs work the same
    np.testing.assert_array_equal(aggregate(rule, inputs, **options).value, out.value)


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    n=st.integers(1, 9),
    d=st.integers(1, 6),
    b=st.integers(0, 3),
    dtype=st.sampled_from([np.float32, np.float64]),
    perm_seed=st.integers(0, 2**32 - 1),
)
def test_aggregate_coordinatewise_rules_ignore_input_order(seed, n, d, b, dtype, perm_seed):
    inputs = random_inputs(seed, n, d, dtype)
    perm = np.random.default_rng(perm_seed).permutation(n)
    shuffled = [inputs[i] for i in perm]
    b = min(b, (n - 1) // 2)
    # Selection rules see the values sorted, so the result is exactly the same.
    exact = [("median", {}), ("trimmed_mean", {"b": b})] if b > 0 else [("median", {})]
    for rule, options in exact:
        np.testing.assert_array_equal(
            aggregate(rule, shuffled, **options).value, aggregate(rule, inputs, **options).value
        )
    # Sums run in index order, so a new order may round differently.
    for rule, options in (("mean", {}), ("trimmed_mean", {"b": 0})):
        np.testing.assert_allclose(
            aggregate(rule, shuffled, **options).value,
            aggregate(rule, inputs, **options).value,
            rtol=1e-6 if dtype == np.float32 else 1e-12,
            atol=1e-12 * max(float(np.abs(np.stack(inputs)).max()), 1.0),
        )


def attack(
    rng: np.random.Generator, honest: list[np.ndarray], f: int, kind: str
) -> list[np.ndarray]:
    center = np.mean(honest, axis=0)
    if kind == "flip":
        return [-100.0 * center for _ in range(f)]
    return [center + 1e4 * rng.standard_normal(center.shape) for _ in range(f)]


@SETTINGS
@given(
    seed=st.integers(0, 2**32 - 1),
    f=st.integers(1, 3),
    extra=st.integers(0, 3),
    d=st.integers(1, 5),
    kind=st.sampled_from(["flip", "noise"]),
    byzantine_first=st.booleans(),
)
def test_aggregate_robust_rules_stay_within_honest_range(seed, f, extra, d, kind, byzantine_first):
    rng = np.random.default_rng(seed)
    n_honest = f + 3 + extra  # n = n_honest + f >= 2f + 3
    center = 1.0 + rng.random(d)
    honest = [center + 0.1 * rng.standard_normal(d) for _ in range(n_honest)]
    bad = attack(rng, honest, f, kind)
    inputs = bad + honest if byzantine_first else honest + bad
    lo, hi = np.min(honest, axis=0), np.max(honest, axis=0)
    honest_ids = set(range(f, f + n_honest)) if byzantine_first else set(range(n_honest))
    for rule, options in (
        ("median", {}),
        ("trimmed_mean", {"b": f}),
        ("krum", {"f": f}),
        ("multikrum", {"f": f}),
        ("multikrum", {"f": f, "m": 2}),
    ):
        out = aggregate(rule, inputs, **options)
        assert np.all(out.value >= lo) and np.all(out.value <= hi), (rule, options)
        if out.selected is not None:
            assert set(out.selected) <= honest_ids
    if kind == "flip":
        mean = aggregate("mean", inputs).value
        assert np.any((mean < lo) | (mean > hi))
