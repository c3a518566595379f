"""Periodic states on their exact orbits: lift_orbits (cyclic one-hots) and fold_onehot (linear maps of them)."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest

from lsrl import compile_source, interpret
from lsrl.ir import graph as ir
from lsrl.passes import PASSES, exact_orbits, optimize
from lsrl.passes.lift_orbits import MAX_ORBIT, is_onehot_state


def _graph(src: str) -> ir.Graph:
    return compile_source(src, "t.lsrl").graph


def _ops(g: ir.Graph, kind) -> list[ir.Node]:
    return [n for n in g.nodes if isinstance(n.op, kind)]


def _x(length: int, dim: int = 1, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, (2, length, dim)).astype(float)


@pytest.mark.parametrize("n", [2, 3, 4, 5, 7, 12])
def test_rotation_one_hots_become_exact_and_agree_with_the_program(n):
    """mod_onehot(n) (a rotation by 2 pi / n with rounded cosines): the lifted graph gives exactly 0/1 at every
    step up to a long max_len, the last included, and agrees with the float64 program within its drift."""
    src = f"input x[1] in {{0, 1}}\nlet oh = mod_onehot({n})\noutput oh\nprobe count = mod_counter({n})"
    g = _graph(src)
    lifted = exact_orbits(g)
    assert all(is_onehot_state(s.op) for s in _ops(lifted, ir.LinState))
    assert not _ops(lifted, ir.ReLU)  # every step read the one-hot only: folded to a linear map
    x = _x(1000)
    got, ref = interpret(lifted, x), interpret(g, x)
    t = np.arange(1000)
    assert np.array_equal(got.output[0], np.eye(n)[t % n])  # exact, not within 1e-16
    assert np.array_equal(got.probes["count"][0, :, 0], t % n)
    np.testing.assert_allclose(got.output, ref.output, rtol=0, atol=1e-9)


@pytest.mark.parametrize(("decl", "period"), [
    ("state s = 1\ns <- -s", 2),
    ("state s[3] = [1, 0, 0]\ns <- [[0, 0, 1], [1, 0, 0], [0, 1, 0]] @ s", 3),
    ("state s[2] = [1, 2]\ns <- [[0, -1], [1, 0]] @ s + [0, 0]", 4),
])
def test_rational_periodic_states_lift_exactly(decl, period):
    g = _graph(f"input x[1] in {{0, 1}}\n{decl}\noutput relu(s[0]) + 2 * s[0] * x")
    already = is_onehot_state(_ops(g, ir.LinState)[0].op)  # a one-hot permutation state stays as it is
    new, report = PASSES["lift_orbits"](g)
    (state,) = _ops(new, ir.LinState)
    assert report.rewrites["lift_periodic_state"] == (0 if already else 1)
    assert state.dim == period and is_onehot_state(state.op)
    xe = np.vectorize(Fraction, otypes=[object])(_x(3 * period + 2))
    assert interpret(new, xe, exact=True).output.tolist() == interpret(g, xe, exact=True).output.tolist()


@pytest.mark.parametrize("decl", [
    "state s = -1\ns <- s + 1",  # a counter: no period
    "state s = 1\ns <- s / 2 + 1",  # converges, never repeats
    "state s = 1\ns <- 2 * s",  # grows (overflows in the float64 search)
    "state s = 0\ns <- s + x",  # input-driven
    f"state s[2] = [1, 0]\ns <- rotation(2 * pi / {MAX_ORBIT + 1}) @ s",  # a period beyond MAX_ORBIT
])
def test_other_states_stay(decl):
    g = _graph(f"input x[1] in {{0, 1}}\n{decl}\noutput s")
    assert PASSES["lift_orbits"](g)[1].rewrites["lift_periodic_state"] == 0


def test_products_fold_only_for_one_one_hot():
    src = """input x[1] in {0, 1}
    let a = mod_onehot(3)
    let b = mod_onehot(4)
    output [a[0] * a[1] + a[2] * a[2], a[0] * b[0], a[1] * x]"""
    g, _ = optimize(_graph(src))
    multis = _ops(g, ir.Multi)
    assert len(multis) == 2  # a * a folded; a * b (two one-hots) and a * x (the input) stay
    x = _x(30)
    t = np.arange(30)
    out = interpret(g, x).output[0]
    assert np.array_equal(out[:, 0], (t % 3 == 2).astype(float))
    assert np.array_equal(out[:, 1], ((t % 3 == 0) & (t % 4 == 0)).astype(float))
    assert np.array_equal(out[:, 2], (t % 3 == 1) * x[0, :, 0])


def test_the_compile_report_names_the_lift():
    g = _graph("input x[1] in {0, 1}\noutput mod_counter(6)")
    _, reports = optimize(g)
    by_name = {r.name: r for r in reports}
    assert by_name["lift_orbits"].rewrites["lift_periodic_state"] == 1
    assert by_name["fold_onehot"].rewrites["relu_of_onehot"] >= 2
