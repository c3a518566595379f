"""The forward error analysis (lsrl/guarantee/propagate.py): reads of ReLU groups are sound, accumulators of
products that fall exactly to 0 are charged only until then, and steps the dtype cannot resolve are refused."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from lsrl.backends.base import SILU_SLOPE

import lsrl
from lsrl.diagnostics import LsrlError
from lsrl.guarantee.relu_groups import Errors, Group

ROOT = Path(__file__).resolve().parent.parent
small = st.integers(-4, 4).filter(bool)


def _check_group_read(lam, biases, coefs, e_t, seed, unit, band, surr, slope):
    """For any t in [-3, 3] and |dt| <= e_t, |c . (unit(lam (t + dt) + b) - relu(lam t + b))| stays within the
    read bound of the group of those units (unit: the ReLU or its surrogate, exact outside `band`)."""
    n = len(biases)
    g = Group(e_t, [Fraction(lam)] * n, [Fraction(b) for b in biases], np.zeros(n), np.full(n, band),
              np.full(n, surr), np.zeros(n), None, 0.0, -3.0, 3.0, tuple((0, j) for j in range(n)), 0.0, slope)
    c = np.array(coefs[:n], dtype=float)
    bound = g.read(c[None, :], list(range(n)))[0]
    rng = np.random.default_rng(seed)
    t = rng.uniform(-3, 3, 4000)
    dt = rng.uniform(-e_t, e_t, 4000)
    b = np.array(biases, dtype=float)
    moved = unit(lam * (t + dt)[:, None] + b) - np.maximum(lam * t[:, None] + b, 0)
    assert np.abs(moved @ c).max() <= bound * (1 + 1e-9) + 1e-12


@settings(max_examples=200, deadline=None)
@given(lam=small, biases=st.lists(st.integers(-6, 6), min_size=1, max_size=4),
       coefs=st.lists(st.integers(-3, 3), min_size=4, max_size=4), e_t=st.sampled_from([0.01, 0.1, 0.5, 20.0]),
       seed=st.integers(0, 2**16))
def test_a_group_read_bounds_every_perturbation(lam, biases, coefs, e_t, seed):
    """Parallel exact ReLUs relu(lam t + b_k) read through coefficients c: an on unit passes lam dt, one in its
    hull band a fraction of it, one off nothing; and however large e_t, the read errs by at most the swing of
    the exact read over the inputs it may see (a step relu(k t + 1) - relu(k t) by at most its height)."""
    _check_group_read(lam, biases, coefs, e_t, seed, lambda w: np.maximum(w, 0), 0.0, 0.0, (0.0, 1.0))


def _silu(x):
    return x * 0.5 * (1 + np.tanh(x / 2))  # x sigmoid(x), without overflow


@settings(max_examples=200, deadline=None)
@given(lam=small, biases=st.lists(st.integers(-6, 6), min_size=1, max_size=4),
       coefs=st.lists(st.integers(-3, 3), min_size=4, max_size=4), e_t=st.sampled_from([0.01, 0.3, 2.0, 20.0]),
       k=st.sampled_from([4.0, 64.0]), seed=st.integers(0, 2**16))
def test_a_surrogate_group_read_bounds_every_perturbation(lam, biases, coefs, e_t, k, seed):
    """The same for silu surrogates silu(k w) / k of the ReLUs (mamba's channels, a GRU switch): a move in the
    band passes at the surrogate's slope, in [-0.0998, 1.0998], and inside the band the surrogate is off by at
    most 0.2785 / k (silu(x) = x, or 0, to 1e-15 for |x| >= 40)."""
    _check_group_read(lam, biases, coefs, e_t, seed, lambda w: _silu(k * w) / k, 40.0 / k, 0.2785 / k, SILU_SLOPE)


@settings(max_examples=200, deadline=None)
@given(rows=st.lists(st.tuples(small, small), min_size=2, max_size=3), biases=st.lists(st.integers(-3, 3), min_size=3,
       max_size=3), coefs=st.lists(small, min_size=3, max_size=3), errs=st.tuples(st.sampled_from([0.0, 0.1, 1.0]),
       st.sampled_from([0.05, 0.5])), seed=st.integers(0, 2**16))
def test_a_joint_read_of_several_groups_bounds_every_perturbation(rows, biases, coefs, errs, seed):
    """ReLUs of one MLP stage with different argument directions w_k = E_k x + b_k (several groups), read in one
    sum: their moves are taken through the stage input x together (`Errors.read`), and the bound still holds
    for every x in the box and every |dx_j| <= its error."""
    E = np.array(rows, dtype=float)
    b = np.array(biases[:len(rows)], dtype=float)
    source = Errors(np.array(errs))
    groups = {}
    for j, (row, bias) in enumerate(zip(E, b, strict=True)):
        lam = Fraction(int(row[0]))
        groups[j + 1] = Group(float(source.read((row / row[0])[None, :])[0]), [lam], [Fraction(int(bias))],
                               np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1), None, 0.0,
                               -2 * abs(row).sum() / abs(row[0]), 2 * abs(row).sum() / abs(row[0]),  # t = E x / lam
                               ((j, 0),), 0.0, (0.0, 1.0), row[None, :], source)
    hid = Errors(np.zeros(len(rows)), [(j + 1, 0) for j in range(len(rows))], groups)
    c = np.array(coefs[:len(rows)], dtype=float)
    bound = hid.read(c[None, :])[0]
    apart = sum(abs(cj) * g.member_bound[0] for cj, g in zip(c, groups.values(), strict=True))
    assert bound <= apart * (1 + 1e-12)
    rng = np.random.default_rng(seed)
    x = rng.uniform(-2, 2, (4000, 2))
    dx = rng.uniform(-1, 1, (4000, 2)) * np.array(errs)
    moved = np.maximum((x + dx) @ E.T + b, 0) - np.maximum(x @ E.T + b, 0)
    assert np.abs(moved @ c).max() <= bound * (1 + 1e-12) + 1e-12


def test_a_conditional_moves_with_its_flag_once():
    """relu(a - off) - relu(-a - off) (a ReLU if-else) moves by the error of `off` once: at most one of the two
    is on, and both move the same way with it."""
    source = Errors(np.array([0.0, 1.0]))  # a exact, off within 1
    groups = {j + 1: Group(1.0, [Fraction(1)], [Fraction(0)], np.zeros(1), np.zeros(1), np.zeros(1), np.zeros(1),
                            None, 0.0, -10.0, 10.0, ((j, 0),), 0.0, (0.0, 1.0), np.array([[s, -1.0]]), source)
              for j, s in enumerate((1.0, -1.0))}
    hid = Errors(np.zeros(2), [(1, 0), (2, 0)], groups)
    assert hid.read(np.array([[1.0, -1.0]]))[0] == 1.0  # read apart: 2


def test_an_off_member_passes_its_drift():
    """A GRU switch that is off holds its last value, off by its drift (StageErrors.off_drift) in the sums
    reading it: a group read over members that are off at every t still passes their drifts."""
    drift = np.array([1e-9, 2e-9])
    g = Group(0.01, [Fraction(1)] * 2, [Fraction(-10), Fraction(-20)], np.zeros(2), np.zeros(2), np.zeros(2),
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


RELAY = """
input x[1] in [-1, 1]
let t = counter()
def pick(c, a) = relu(a - 2 * (1 - c)) - relu(-a - 2 * (1 - c))
state q1 = 0
q1 <- q1 + pick(smaller(t, 1 / 2, 4), x)
state q2 = 0
q2 <- q2 + pick(smaller(t, 3 / 2, 4), q1)
output q2
"""


def test_a_latch_gathers_its_drive_errors_over_the_steps_it_is_driven(monkeypatch):
    """q2 latches q1 during the first 2 steps only. On gru without its twins, q1 drifts every step (its off
    switches hold their last value), so its error at step 4096 is 40x its error at step 2; q2 takes its drive's
    errors from an analysis of those 2 steps (an early horizon) instead of charging q1's error at step 4096 twice.
    With the twins q1 does not drift at all, and the bound is lower still."""
    from lsrl.backends import gated

    from lsrl.guarantee import propagate

    latched = lsrl.compile(RELAY, "gru", dtype="float32", max_len=4096).promise().output.abs_bound
    monkeypatch.setattr(gated, "_latch_plan", lambda stack: {})
    early = lsrl.compile(RELAY, "gru", dtype="float32", max_len=4096).promise().output.abs_bound
    assert latched < early
    monkeypatch.setattr(propagate, "MAX_HORIZONS", 1)
    late = lsrl.compile(RELAY, "gru", dtype="float32", max_len=4096).promise().output.abs_bound
    assert early < late / 2


def test_the_flag_of_a_quiet_product_is_recorded():
    compiled = lsrl.compile(LATCH, "lrnn", max_len=64)
    quiet = compiled.facts.ranges.quiet
    assert quiet and all(k == 1 and m > 0 for k, m in quiet.values())


def test_the_flag_of_a_quiet_conditional_is_recorded_quiet_too():
    """vec2vec's answer register reads pick(hit, f) = relu(f - off) - relu(-f - off), off = big (1 - hit): its
    ReLUs are quiet after the prompt because `hit` is 0 then, so `hit`'s own ReLU (its argument <= -2 after step
    17) is recorded as well: a float ReLU is 0 only if the flag it reads is 0 in floats too."""
    compiled = lsrl.compile(str(ROOT / "programs/vec2vec.lsrl"), "lrnn")
    quiet = {compiled.graph[n].label: v for (n, _), v in compiled.facts.ranges.quiet.items()}
    assert quiet["hit"] == (17, 2)


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
