"""The forward error analysis (lsrl/guarantee/propagate.py): reads of ReLU groups are sound, accumulators of
products that fall exactly to 0 are charged only until then, and steps the dtype cannot resolve are refused."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import lsrl
from lsrl.diagnostics import LsrlError
from lsrl.guarantee.propagate import _Group

ROOT = Path(__file__).resolve().parent.parent
small = st.integers(-4, 4).filter(bool)


@settings(max_examples=200, deadline=None)
@given(lam=small, biases=st.lists(st.integers(-6, 6), min_size=1, max_size=4),
       coefs=st.lists(st.integers(-3, 3), min_size=4, max_size=4), e_t=st.sampled_from([0.01, 0.1, 0.5]),
       seed=st.integers(0, 2**16))
def test_a_group_read_bounds_every_perturbation(lam, biases, coefs, e_t, seed):
    """Parallel exact ReLUs relu(lam t + b_k) read through coefficients c: for any t in the group's range and any
    |dt| <= e_t, |c . (relu(lam (t + dt) + b) - relu(lam t + b))| stays within the group's read bound (an on unit
    passes lam dt, one in its hull band a fraction of it, one off nothing)."""
    n = len(biases)
    g = _Group(e_t, [Fraction(lam)] * n, [Fraction(b) for b in biases], np.zeros(n), np.zeros(n), np.zeros(n),
               np.zeros(n), None, 0.0, -3.0, 3.0, tuple((0, k) for k in range(n)))
    c = np.array(coefs[:n], dtype=float)[None, :]
    bound = g.read(c, list(range(n)))[0]
    rng = np.random.default_rng(seed)
    t = rng.uniform(-3, 3, 2000)
    dt = rng.uniform(-e_t, e_t, 2000)
    b = np.array(biases, dtype=float)
    moved = np.maximum(lam * (t + dt)[:, None] + b, 0) - np.maximum(lam * t[:, None] + b, 0)
    assert np.abs(moved @ c[0]).max() <= bound * (1 + 1e-12) + 1e-12


def test_an_off_member_passes_its_drift():
    """A GRU switch that is off holds its last value, off by its drift (StageErrors.off_drift) in the sums
    reading it: a group read over members that are off at every t still passes their drifts."""
    drift = np.array([1e-9, 2e-9])
    g = _Group(0.01, [Fraction(1)] * 2, [Fraction(-10), Fraction(-20)], np.zeros(2), np.zeros(2), np.zeros(2),
               np.zeros(2), None, 0.0, -3.0, 3.0, ((0, 0), (0, 1)), drift)
    assert np.allclose(g.member_bound, drift)
    assert np.isclose(g.read(np.array([[1.0, -3.0]]), [0, 1])[0], 1e-9 + 6e-9)


LATCH = """
input x[1] in [-3, 3]
let first = smaller(counter(), 1 / 2, 4)
state q = 0
q <- q + first * x
output q
"""


@pytest.mark.parametrize("backend", ["lrnn", "rnn", "lstm"])
def test_a_latch_of_a_flag_product_is_charged_once(backend):
    """q <- q + first * x with `first` 1 at step 0 only: from step 1 on the flag is exactly 0 in floats, and so
    is the product on these backends (lrnn's multiply, rnn's ReLU if-else relu(x - 4) - relu(-x - 4), an LSTM
    switch saturated at 0), so the latch's bound does not grow with max_len. (A GRU switch that is off holds
    its last value in two units whose difference the next sum cancels only up to rounding.)"""
    bounds = [lsrl.compile(LATCH, backend, dtype="float32", max_len=n).promise().output.abs_bound
              for n in (16, 4096)]
    assert bounds[0] == bounds[1] < 1e-4


def test_the_flag_of_a_quiet_product_is_recorded():
    compiled = lsrl.compile(LATCH, "lrnn", max_len=64)
    quiet = compiled.facts.ranges.quiet
    assert quiet and all(k == 1 and m > 0 for k, m in quiet.values())


def test_an_unresolvable_step_is_refused_with_what_would_work():
    """vec2vec's default cell edges are 1e-6 wide, below float32's rounding of its query (|q| <= 1000): the
    compiler refuses float32 at the step, says why, and names what would resolve it."""
    with pytest.raises(LsrlError) as exc:
        lsrl.compile(str(ROOT / "programs/vec2vec.lsrl"), "lrnn", dtype="float32").promise()
    d = exc.value.diagnostics[0]
    text = str(exc.value)
    assert d.code == "E0708" and d.span is not None and "bump(q, lo" in text
    assert "float64" in d.hint and "eps" in d.hint


def test_vec2vec_has_useful_bounds_where_the_dtype_resolves_it():
    """float64 at the defaults, and float32 with cell edges of 1/64 and values up to 1 (multiplicative gates),
    verify on lrnn within a useful bound."""
    from lsrl import load_program
    from lsrl.compiling import CompileOptions
    from lsrl.verifying import verify

    path = str(ROOT / "programs/vec2vec.lsrl")
    r64 = verify(load_program(path), CompileOptions("lrnn"), samples=8, length=32)
    prog32 = load_program(path, {"eps": Fraction(1, 64), "max_abs": 1, "gated": 1})
    r32 = verify(prog32, CompileOptions("lrnn", dtype="float32"), samples=8, length=32)
    for report in (r64, r32):
        assert report.bounded and report.passed, report.lines()


@settings(max_examples=100, deadline=None)
@given(n=st.integers(1, 8), steps=st.integers(1, 40), seed=st.integers(0, 2**16))
def test_chain_power_sums_match_the_dense_ones(n, steps, seed):
    """sum_{k < steps} |a^k| for shift registers, cyclic one-hots and their scalings (at most one nonzero per row
    and column), followed link by link in O(n) per power, equals the dense matrix powers' sum."""
    from lsrl.guarantee.propagate import _chain_sums, _dense_sums

    rng = np.random.default_rng(seed)
    a = np.zeros((n, n))
    for i, j in enumerate(rng.permutation(n)):
        if rng.random() < 0.8:
            a[i, j] = rng.choice([1.0, 1.0, -1.0, 0.5, -2.0])
    np.testing.assert_allclose(_chain_sums(a, steps), _dense_sums(a, steps), rtol=1e-12)
    a[0] = 1.0  # a full row: not a chain
    assert n == 1 or _chain_sums(a, steps) is None
