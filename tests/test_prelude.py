"""The standard prelude (lsrl/frontend/prelude.lsrl) and the IR primitives, through tiny programs.

Every prelude function is checked against a Python oracle written from its documented contract (not
from its definition): on per-step values (a tiny program compiled with `lsrl.compile_source`, run in
exact rational mode and in float64) and, where it folds, on constants (the output node must then be a
constant Linear holding the oracle's value). The exactness conditions are tested at and around their
thresholds (step exactly 1 for x >= 0 and 0 for x <= -1/scale, ifelse exact for |a|, |b| <= big, ...),
and so are the documented ways of failing outside them.

The second half exercises each IR primitive through a program that produces it: Linear (`@`, `+`),
ReLU, Multi (gate), Concat / Slice (indexing, gathers, slices), and LinState with a general A, bias,
rotation dynamics and the init semantics (the first value a reader sees is A init + update).
"""

from __future__ import annotations

import math
from fractions import Fraction
from functools import cache

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lsrl
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs

SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
F = Fraction


# ---------------------------------------------------------------- helpers


@cache
def _compile(src: str, params: tuple) -> lsrl.Program:
    return lsrl.compile_source(src, "t.lsrl", params=dict(params) or None)


def compile_(src: str, **params) -> lsrl.Program:
    return _compile(src, tuple(sorted(params.items())))


def to_obj(rows) -> np.ndarray:
    """A (batch, time, dim) object array of Fractions from nested lists."""
    arr = np.array(rows, dtype=object)
    out = np.empty(arr.shape, dtype=object)
    out.reshape(-1)[:] = [F(v) for v in arr.reshape(-1)]
    return out


def run_both(prog: lsrl.Program, rows) -> np.ndarray:
    """Run exact and float on one sequence (time, dim); check they agree; return the exact output."""
    ex = lsrl.interpret(prog.graph, to_obj([rows]), exact=True)
    assert all(isinstance(v, Fraction) for v in ex.output.flat)
    fl = lsrl.interpret(prog.graph, np.array([[[float(v) for v in r] for r in rows]]))
    np.testing.assert_allclose(ex.output.astype(float), fl.output, rtol=1e-9, atol=1e-9)
    return ex.output[0]


def lit(v) -> str:
    """An LSRL literal for a rational or a (nested) list of them."""
    if isinstance(v, (list, tuple, np.ndarray)):
        return "[" + ", ".join(lit(e) for e in v) + "]"
    v = F(v)
    return f"({v.numerator}/{v.denominator})"


def folded(expr: str, defs: str = "", **params) -> list:
    """The value of a constant expression, checking that it folded into a constant output node."""
    header = "".join(f"param {k} = 0\n" for k in params if k not in ("scale", "big"))
    prog = compile_(f"param scale = 1000\nparam big = 1048576\n{header}{defs}\ninput x[1]\noutput {expr}",
                    **params)
    g = prog.graph
    node = g[g.output]
    assert isinstance(node.op, ir.Linear) and node.op.mats == () and node.args == (), "did not fold"
    return list(node.op.bias.data)


def nodes_of(prog: lsrl.Program, kind: type) -> list[ir.Node]:
    return [n for n in prog.graph.nodes if isinstance(n.op, kind)]


rationals = st.fractions(-4, 4, max_denominator=64)
scales = st.sampled_from([F(1), F(2), F(7, 2), F(10), F(1000)])


# ---------------------------------------------------------------- oracles (from the documented contracts)


def o_step(x, s):
    if x >= 0:
        return F(1)
    if x <= -1 / s:
        return F(0)
    return s * x + 1


def o_bump(x, lo, hi, s):
    """For lo <= hi: 1 on [lo, hi], 0 at distance >= 1/scale, a unit ramp of width 1/scale between."""
    if lo <= x <= hi:
        return F(1)
    d = lo - x if x < lo else x - hi
    return max(F(0), 1 - s * d)


def o_larger(x, y, s):
    if x >= y + 1 / s:
        return F(1)
    if x <= y:
        return F(0)
    return s * (x - y)


def o_eq(x, y, s):
    return max(F(0), 1 - s * abs(x - y))


def near(s, *centres):
    """Points at and around the thresholds of a ramp of width 1/s at the given centres."""
    offs = [F(0), 1 / s, -1 / s, 1 / (2 * s), -1 / (2 * s), 2 / s, -2 / s, F(1, 10**6), -F(1, 10**6)]
    return st.sampled_from([c + o for c in centres for o in offs])


# ---------------------------------------------------------------- comparisons on per-step values

POINTWISE = """
param scale = 1000
param big = 1048576
def f(a, b, c) = {expr}
input x[3]
output f(x[0], x[1], x[2])
"""


def check_pointwise(expr: str, oracle, triples, **params) -> None:
    """f(a, b, c) = expr on per-step a, b, c (exact and float) and, folded, on the same constants."""
    prog = compile_(POINTWISE.format(expr=expr), **params)
    got = run_both(prog, [list(t) for t in triples])
    want = [oracle(*t) for t in triples]
    assert [r[0] for r in got] == want
    calls = ", ".join(f"f({lit(a)}, {lit(b)}, {lit(c)})" for a, b, c in triples)
    assert folded(f"cat({calls})", defs=f"def f(a, b, c) = {expr}", **params) == want


@st.composite
def around(draw, s, n_centres=1, size=12):
    """Triples (a, b, c) whose a lies at/near the threshold(s) or anywhere, b and c anywhere."""
    pt = st.one_of(rationals, near(s, F(0)))
    return draw(st.lists(st.tuples(pt, rationals, rationals), min_size=1, max_size=size))


@SETTINGS
@given(data=st.data(), s=scales)
def test_step(data, s):
    triples = data.draw(around(s))
    check_pointwise("step(a, scale)", lambda a, b, c: o_step(a, s), triples, scale=s)


def test_step_default_scale_thresholds():
    prog = compile_("input x[1]\noutput step(x)")
    xs = [0, F(1, 10**9), 5, -F(1, 1000), -F(1, 2000), -1, -F(1001, 10**6)]
    got = run_both(prog, [[v] for v in xs])[:, 0].tolist()
    assert got == [1, 1, 1, 0, F(1, 2), 0, 0]


@SETTINGS
@given(data=st.data(), s=scales)
def test_bump(data, s):
    lo = data.draw(rationals)
    hi = lo + data.draw(st.fractions(0, 3, max_denominator=16))
    xs = data.draw(st.lists(st.one_of(rationals, near(s, lo, hi)), min_size=1, max_size=12))
    check_pointwise("bump(a, b, c, scale)", lambda a, b, c: o_bump(a, b, c, s),
                    [(x, lo, hi) for x in xs], scale=s)


@SETTINGS
@given(data=st.data(), s=scales)
def test_larger_smaller(data, s):
    ys = data.draw(st.lists(rationals, min_size=1, max_size=12))
    offs = data.draw(st.lists(st.one_of(rationals, near(s, F(0), 1 / s)), min_size=len(ys), max_size=len(ys)))
    triples = [(y + o, y, F(0)) for y, o in zip(ys, offs, strict=True)]
    check_pointwise("larger(a, b, scale)", lambda a, b, c: o_larger(a, b, s), triples, scale=s)
    check_pointwise("smaller(b, a, scale)", lambda a, b, c: o_larger(a, b, s), triples, scale=s)


@SETTINGS
@given(data=st.data(), s=scales)
def test_eq_neq(data, s):
    ys = data.draw(st.lists(rationals, min_size=1, max_size=12))
    offs = data.draw(st.lists(st.one_of(rationals, near(s, F(0))), min_size=len(ys), max_size=len(ys)))
    triples = [(y + o, y, F(0)) for y, o in zip(ys, offs, strict=True)]
    check_pointwise("eq(a, b, scale)", lambda a, b, c: o_eq(a, b, s), triples, scale=s)
    check_pointwise("neq(a, b, scale)", lambda a, b, c: 1 - o_eq(a, b, s), triples, scale=s)


def test_comparisons_exact_on_integers_with_defaults():
    """Integers differ by >= 1 >= 1/1000: the default-scale comparisons are exact 0/1 there."""
    pairs = [(a, b, 0) for a in range(-3, 4) for b in range(-3, 4)]
    prog = compile_(POINTWISE.format(expr="[larger(a, b), smaller(a, b), eq(a, b), neq(a, b)]"))
    got = run_both(prog, [list(p) for p in pairs]).tolist()
    assert got == [[a > b, a < b, a == b, a != b] for a, b, _ in pairs]


# ---------------------------------------------------------------- boolean logic


@pytest.mark.parametrize("name,table", [
    ("and", lambda a, b: a & b), ("or", lambda a, b: a | b), ("xor", lambda a, b: a ^ b),
    ("not", lambda a, b: 1 - a),
])
def test_boolean(name, table):
    expr = f"{name}(a)" if name == "not" else f"{name}(a, b)"
    triples = [(a, b, 0) for a in (0, 1) for b in (0, 1)]
    check_pointwise(expr, lambda a, b, c: F(table(a, b)), triples)


@SETTINGS
@given(st.lists(st.tuples(rationals, rationals, st.just(F(0))), min_size=1, max_size=12))
def test_boolean_documented_formulas_off_01(triples):
    """Off {0, 1} (e.g. a ramp's fractional output) the documented definitions are what you get."""
    def o_and(a, b):
        return max(a + b - 1, F(0))

    check_pointwise("not(a)", lambda a, b, c: 1 - a, triples)
    check_pointwise("and(a, b)", lambda a, b, c: o_and(a, b), triples)
    check_pointwise("or(a, b)", lambda a, b, c: 1 - max(1 - a - b, F(0)), triples)
    check_pointwise("xor(a, b)", lambda a, b, c: a + b - 2 * o_and(a, b), triples)


# ---------------------------------------------------------------- conditionals


@SETTINGS
@given(data=st.data(), big=st.sampled_from([F(1), F(10), F(1048576)]))
def test_ifelse_exact_within_big(data, big):
    val = st.one_of(st.fractions(-big, big, max_denominator=64), st.sampled_from([big, -big, F(0)]))
    triples = data.draw(st.lists(st.tuples(val, val, st.sampled_from([F(0), F(1)])), min_size=1, max_size=12))
    check_pointwise("ifelse(c, a, b, big)", lambda a, b, c: a if c == 1 else b, triples, big=big)


def test_ifelse_leaks_beyond_big():
    """The documented limit: an unselected value larger than big in magnitude leaks into the result."""
    prog = compile_(POINTWISE.format(expr="ifelse(c, a, b, big)"), big=10)
    got = run_both(prog, [[5, 25, 1], [5, -25, 1], [-30, 3, 0]])[:, 0].tolist()
    assert got == [5 + 15, 5 - 15, 3 - 20]


@SETTINGS
@given(st.lists(st.tuples(st.fractions(-10**9, 10**9), st.fractions(-10**9, 10**9),
                          st.sampled_from([F(0), F(1)])), min_size=1, max_size=12))
def test_ifelse_mul_any_values(triples):
    check_pointwise("ifelse_mul(c, a, b)", lambda a, b, c: a if c == 1 else b, triples)
    prog = compile_(POINTWISE.format(expr="ifelse_mul(c, a, b)"))
    assert len(nodes_of(prog, ir.Multi)) == 2


@SETTINGS
@given(data=st.data(), s=scales)
def test_ifelse_step(data, s):
    """Condition sharpened at 1/2: c >= 1/2 picks a, c <= 1/2 - 1/scale picks b."""
    hi = st.fractions(F(1, 2), 2, max_denominator=64)
    lo = st.fractions(-1, F(1, 2) - 1 / s, max_denominator=max(64, (1 / s).denominator))
    cs = data.draw(st.lists(st.one_of(hi, lo, st.sampled_from([F(1, 2), F(1, 2) - 1 / s])), min_size=1,
                            max_size=12))
    ab = data.draw(st.lists(st.tuples(rationals, rationals), min_size=len(cs), max_size=len(cs)))
    triples = [(a, b, c) for (a, b), c in zip(ab, cs, strict=True)]
    check_pointwise("ifelse_step(c, a, b, big, scale)", lambda a, b, c: a if c >= F(1, 2) else b, triples,
                    scale=s)


# ---------------------------------------------------------------- arithmetic helpers


@SETTINGS
@given(st.lists(st.tuples(rationals, rationals, rationals), min_size=1, max_size=12))
def test_abs_max_min(triples):
    check_pointwise("abs(a)", lambda a, b, c: abs(a), triples)
    check_pointwise("max(a, b)", lambda a, b, c: max(a, b), triples)
    check_pointwise("min(a, b)", lambda a, b, c: min(a, b), triples)


@SETTINGS
@given(st.lists(st.tuples(rationals, rationals, st.fractions(0, 3, max_denominator=8)), min_size=1, max_size=12))
def test_clip(triples):
    triples = [(x, lo, lo + w) for x, lo, w in triples]
    check_pointwise("clip(a, b, c)", lambda a, b, c: min(max(a, b), c), triples)


def test_elementwise_on_vectors():
    prog = compile_("input x[3]\noutput cat(step(x), abs(x), max(x, [0, 1, 2]), clip(x, -1, 1))")
    got = run_both(prog, [[-2, F(1, 2), 3]]).tolist()
    assert got == [[0, 1, 1, 2, F(1, 2), 3, 0, 1, 3, -1, F(1, 2), 1]]


# ---------------------------------------------------------------- constant matrices


def test_rotation_exact_quarter_turns():
    for k, (c, s) in enumerate([(1, 0), (0, 1), (-1, 0), (0, -1)]):
        assert folded(f"rotation({k} * pi / 2) @ [1, 0]") == [c, s]
        assert folded(f"rotation({k} * pi / 2) @ [0, 1]") == [-s, c]


@SETTINGS
@given(theta=st.floats(-7, 7, allow_nan=False), v=st.tuples(rationals, rationals))
def test_rotation(theta, v):
    want = np.array([[math.cos(theta), -math.sin(theta)], [math.sin(theta), math.cos(theta)]]) @ np.array(
        [float(v[0]), float(v[1])])
    np.testing.assert_allclose(np.array(folded(f"rotation(theta) @ {lit(v)}", theta=theta), dtype=float),
                               want, atol=1e-12)
    prog = compile_("param theta = 0\ninput x[2]\noutput rotation(theta) @ x", theta=theta)
    out = lsrl.interpret(prog.graph, np.array([[[float(v[0]), float(v[1])]]])).output[0, 0]
    np.testing.assert_allclose(out, want, atol=1e-12)


@pytest.mark.parametrize("n", range(1, 7))
def test_shift_matrix(n):
    v = [F(i + 1, 3) for i in range(n)]
    want = v[1:] + [F(0)]
    assert folded(f"shift_matrix({n}) @ {lit(v)}") == want
    prog = compile_(f"input x[{n}]\noutput shift_matrix({n}) @ x")
    assert run_both(prog, [v]).tolist() == [want]


@pytest.mark.parametrize("n", [1, 2, 5])
def test_eye_with_an_offset_is_numpys(n):
    """eye(n, k): ones at (i, i + k), the comprehension shift_matrix and kron_shift were written as before."""
    for k in range(-n, n + 1):
        want = [[F(int(x)) for x in row] for row in np.eye(n, k=k, dtype=int)]
        assert folded(f"eye({n}, {k}) @ {lit([F(j + 1) for j in range(n)])}") == [
            sum((want[i][j] * (j + 1) for j in range(n)), F(0)) for i in range(n)]
        comp = f"[[1 if j == i + {k} else 0 for j in range({n})] for i in range({n})]"
        assert folded(f"eye({n}, {k}) @ {lit([F(j + 1) for j in range(n)])}") == folded(
            f"{comp} @ {lit([F(j + 1) for j in range(n)])}")


def test_eye_offset_out_of_range_is_located():
    for k in (-3, 3):
        with pytest.raises(lsrl.LsrlError, match="E0217"):
            compile_(f"input x[1]\noutput eye(2, {k}) @ [x, x]")


@pytest.mark.parametrize("d,n", [(1, 1), (1, 3), (2, 2), (3, 2), (2, 4)])
def test_kron_shift(d, n):
    v = [F(i + 1) for i in range(d * n)]
    assert folded(f"kron_shift({d}, {n}) @ {lit(v)}") == v[d:] + [F(0)] * d


# ---------------------------------------------------------------- functions with states


def test_counter():
    prog = compile_("input x[1]\noutput counter()")
    assert run_both(prog, [[7]] * 50)[:, 0].tolist() == list(range(50))


@SETTINGS
@given(st.lists(st.tuples(rationals, rationals), min_size=1, max_size=40))
def test_accumulate(seq):
    prog = compile_("input x[2]\noutput accumulate(x)")
    got = run_both(prog, [list(t) for t in seq]).tolist()
    want = [[sum(t[j] for t in seq[: i + 1]) for j in range(2)] for i in range(len(seq))]
    assert got == want


@pytest.mark.parametrize("d", [1, 3])
@pytest.mark.parametrize("k", [1, 2, 5])
def test_delay(d, k):
    prog = compile_(f"input x[{d}]\noutput delay(x, {k})")

    @settings(SETTINGS, max_examples=10)
    @given(st.lists(st.lists(rationals, min_size=d, max_size=d), min_size=1, max_size=30))
    def check(seq):
        want = [seq[t - k] if t >= k else [F(0)] * d for t in range(len(seq))]
        assert run_both(prog, seq).tolist() == want

    check()


def test_delay_zero_is_the_value_itself():
    assert not [n for n in compile_("input x[2]\noutput delay(x, 0)").graph.nodes if n.op.mnemonic == "linstate"]
    prog = compile_("input x[2]\noutput cat(delay(x, 0), [delay(x[0], k) for k in range(3)])")
    assert run_both(prog, [[5, 1], [6, 2], [7, 3]]).tolist() == [[5, 1, 5, 0, 0], [6, 2, 6, 5, 0], [7, 3, 7, 6, 5]]


@pytest.mark.parametrize("k,code", [("-1", "E0217"), ("1/2", "E0217"), ("x[0]", "E0216")])
def test_delay_needs_a_constant_integer_k(k, code):
    with pytest.raises(lsrl.LsrlError) as exc:
        compile_(f"input x[1]\noutput delay(x, {k})")
    assert exc.value.diagnostics[0].code == code


def test_delay_default_is_one_step():
    prog = compile_("input x[1]\noutput delay(x)")
    assert run_both(prog, [[5], [6], [7]])[:, 0].tolist() == [0, 5, 6]


@pytest.mark.parametrize("n", range(1, 13))
def test_mod_onehot_and_mod_counter(n):
    prog = compile_(f"input x[1]\noutput mod_onehot({n})\nprobe count = mod_counter({n})")
    res = lsrl.interpret(prog.graph, np.random.default_rng(n).integers(0, 2, (2, 300, 1)).astype(float))
    t = np.arange(300)
    np.testing.assert_allclose(res.output, np.broadcast_to(np.eye(n)[t % n], (2, 300, n)), rtol=0, atol=1e-9)
    np.testing.assert_allclose(res.probes["count"][..., 0], np.broadcast_to(t % n, (2, 300)), rtol=0, atol=1e-9)
    # rational only where every cos/sin involved snaps to a multiple of 1/2 (n = 1, 2)
    assert prog.graph.exact == (n in (1, 2))


@pytest.mark.parametrize("n", [1, 2])
def test_mod_counter_exact_where_rational(n):
    prog = compile_(f"input x[1]\noutput mod_counter({n})")
    out = lsrl.interpret(prog.graph, to_obj([[[0]] * 40]), exact=True).output[0, :, 0]
    assert out.tolist() == [t % n for t in range(40)]


def test_mod_onehot_irrational_rejected_in_exact_mode():
    prog = compile_("input x[1]\noutput mod_onehot(3)")
    with pytest.raises(lsrl.LsrlError, match="E0501"):
        lsrl.interpret(prog.graph, to_obj([[[0]]]), exact=True)


@pytest.mark.parametrize("n", range(1, 13))
def test_cyclic_onehot(n):
    prog = compile_(f"input x[1]\noutput cyclic_onehot({n})")
    assert prog.graph.exact
    out = lsrl.interpret(prog.graph, to_obj([[[0]] * 300]), exact=True).output[0]
    assert out.tolist() == [[int(t % n == k) for k in range(n)] for t in range(300)]


def test_each_stateful_call_creates_its_own_state():
    prog = compile_("input x[1]\noutput cat(accumulate(x), accumulate(2 * x), counter())")
    assert len(nodes_of(prog, ir.LinState)) == 3
    assert run_both(prog, [[1], [2]]).tolist() == [[1, 2, 0], [3, 6, 1]]


# ================================================================ IR primitives through tiny programs

matrices = st.integers(1, 4).flatmap(lambda r: st.integers(1, 4).flatmap(
    lambda c: st.lists(st.lists(rationals, min_size=c, max_size=c), min_size=r, max_size=r)))


@SETTINGS
@given(M=matrices, data=st.data())
def test_linear_matmul(M, data):
    r, c = len(M), len(M[0])
    b = data.draw(st.lists(rationals, min_size=r, max_size=r))
    seq = data.draw(st.lists(st.lists(rationals, min_size=c, max_size=c), min_size=1, max_size=5))
    prog = compile_("param M = [[0]]\nparam b = [0]\ninput x[len(transpose(M))]\noutput M @ x + b",
                    M=lit(M), b=lit(b))
    got = run_both(prog, seq).tolist()
    assert got == [[sum(M[i][j] * v[j] for j in range(c)) + b[i] for i in range(r)] for v in seq]
    assert any(n.op.mats and n.op.mats[0] == Coeffs(M) for n in nodes_of(prog, ir.Linear))


def test_linear_constant_vector_dot_and_scaling():
    prog = compile_("input x[3]\noutput cat([1, -2, 1/2] @ x, x / 4, 3 * x[0] - x[2], sum(x))")
    assert run_both(prog, [[2, 3, 4]]).tolist() == [[-2, F(1, 2), F(3, 4), 1, 2, 9]]


@SETTINGS
@given(st.lists(st.lists(rationals, min_size=3, max_size=3), min_size=1, max_size=10))
def test_relu(seq):
    prog = compile_("input x[3]\noutput relu(x)")
    assert run_both(prog, seq).tolist() == [[max(v, 0) for v in r] for r in seq]
    assert len(nodes_of(prog, ir.ReLU)) == 1


@SETTINGS
@given(st.lists(st.lists(rationals, min_size=4, max_size=4), min_size=1, max_size=10))
def test_gate(seq):
    prog = compile_("input x[4]\noutput cat(gate(x[0:2], x[2:4]), x[0:2] * x[2:4], x[0] * x[1:3], gate(x[3], 3))")
    want = [[r[0] * r[2], r[1] * r[3], r[0] * r[2], r[1] * r[3], r[0] * r[1], r[0] * r[2], 3 * r[3]] for r in seq]
    assert run_both(prog, seq).tolist() == want
    assert len(nodes_of(prog, ir.Multi)) == 4  # gate(.., 3) materialises the constant: still a Multi
    lin = compile_("input x[2]\noutput x * 3")
    assert nodes_of(lin, ir.Multi) == []  # a constant factor is linear


@SETTINGS
@given(data=st.data(), n=st.integers(1, 6))
def test_concat_index_slice(data, n):
    idx = data.draw(st.lists(st.integers(-n, n - 1), min_size=1, max_size=6))
    i = data.draw(st.integers(-n, n - 1))
    lo, hi = sorted(data.draw(st.tuples(st.integers(0, n - 1), st.integers(1, n))))
    if lo == hi:
        hi = lo + 1
    seq = data.draw(st.lists(st.lists(rationals, min_size=n, max_size=n), min_size=1, max_size=4))
    prog = compile_(f"param idx = [0]\nparam i = 0\nparam lo = 0\nparam hi = 1\ninput x[{n}]\n"
                    "output cat(x[idx], x[i], x[lo:hi], [x[0], 7, x], x[-lo - 1:])",
                    idx=lit(idx), i=i, lo=lo, hi=hi)
    want = [[r[j] for j in idx] + [r[i]] + r[lo:hi] + [r[0], 7, *r] + r[-lo - 1:] for r in seq]
    assert run_both(prog, seq).tolist() == want
    assert nodes_of(prog, ir.Concat) and nodes_of(prog, ir.Slice)


@st.composite
def linear_systems(draw):
    d, m = draw(st.integers(1, 3)), draw(st.integers(1, 2))
    small = st.fractions(-1, 1, max_denominator=8)
    A = draw(st.lists(st.lists(small, min_size=d, max_size=d), min_size=d, max_size=d))
    B = draw(st.lists(st.lists(small, min_size=m, max_size=m), min_size=d, max_size=d))
    bias = draw(st.lists(small, min_size=d, max_size=d))
    init = draw(st.lists(rationals, min_size=d, max_size=d))
    seq = draw(st.lists(st.lists(small, min_size=m, max_size=m), min_size=1, max_size=12))
    return A, B, bias, init, seq


STATE = """
param A = [[0]]
param B = [[0]]
param bias = [0]
param init = [0]
input x[len(transpose(B))]
state s[len(init)] = init
let seen = s          # written above the update: still the new value s_t
s <- A @ s + B @ x + bias
output cat(seen, s)
"""


@SETTINGS
@given(linear_systems())
def test_state_general_A(system):
    A, B, bias, init, seq = system
    prog = compile_(STATE, A=lit(A), B=lit(B), bias=lit(bias), init=lit(init))
    (st_node,) = nodes_of(prog, ir.LinState)
    assert st_node.op.A == Coeffs(A) and st_node.op.init == Coeffs(init)
    s, want = list(init), []
    for v in seq:
        s = [sum(A[i][j] * s[j] for j in range(len(s))) + sum(B[i][j] * v[j] for j in range(len(v))) + bias[i]
             for i in range(len(s))]
        want.append(s + s)
    got = run_both(prog, seq).tolist()
    assert got == want
    # the first value any reader sees is A init + B x_1 + bias, never init itself
    assert got[0][: len(init)] == [sum(A[i][j] * init[j] for j in range(len(init))) +
                                   sum(B[i][j] * seq[0][j] for j in range(len(seq[0]))) + bias[i]
                                   for i in range(len(init))]


def test_state_init_semantics_simple():
    prog = compile_("input x[1]\nstate s = 5\ns <- 2 * s + x\noutput s")
    assert run_both(prog, [[1], [0], [0]])[:, 0].tolist() == [11, 22, 44]


@pytest.mark.parametrize("theta", [0.3, 1.0, 2 * math.pi / 7])
def test_state_rotation(theta):
    prog = compile_("param theta = 0\ninput x[1]\nstate s = [1, 0]\ns <- rotation(theta) @ s\noutput s",
                    theta=theta)
    (st_node,) = nodes_of(prog, ir.LinState)
    assert st_node.op.B is None  # no input drives it
    out = lsrl.interpret(prog.graph, np.zeros((1, 200, 1))).output[0]
    t = np.arange(1, 201)
    np.testing.assert_allclose(out, np.stack([np.cos(t * theta), np.sin(t * theta)], axis=1), atol=1e-12)


def test_state_rotation_quarter_turn_exact():
    prog = compile_("input x[1]\nstate s = [1, 0]\ns <- rotation(pi / 2) @ s + x\noutput s")
    got = run_both(prog, [[0], [0], [1], [0]]).tolist()
    assert got == [[0, 1], [-1, 0], [1, 0], [0, 1]]  # (0,-1)+(1,1) at step 3


def test_state_without_A_or_input():
    prog = compile_("input x[1]\nstate c = 7\nc <- c\nstate z = 5\nz <- 3 * x\noutput cat(c, z)")
    assert run_both(prog, [[1], [2]]).tolist() == [[7, 3], [7, 6]]
    by_label = {n.label: n.op for n in nodes_of(prog, ir.LinState)}
    assert by_label["z"].A.is_zero and by_label["c"].B is None


def test_state_reads_other_state_new_value():
    prog = compile_("input x[1]\nstate a = 0\nstate b = 0\na <- a + b\nb <- b + x\noutput [a, b]")
    assert run_both(prog, [[1], [1], [1]]).tolist() == [[1, 1], [3, 2], [6, 3]]


def test_state_update_must_be_linear():
    with pytest.raises(lsrl.LsrlError, match="E0301"):
        lsrl.compile_source("input x[1]\nstate s = 0\ns <- relu(s) + x\noutput s", "t.lsrl")
    with pytest.raises(lsrl.LsrlError, match="E0301"):
        lsrl.compile_source("input x[1]\nstate s = 0\ns <- s * x\noutput s", "t.lsrl")
