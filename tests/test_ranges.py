"""Range analysis: soundness against the exact interpreter, and the precision backends rely on.

Soundness: every value the exact interpreter produces (on the graph with its float coefficients read as the
exact rationals they are, which is what the claims are about) lies in [lo, hi], is integer / 0-1 / in the
value set wherever that is claimed, and in the abstract value itself. Checked on hand-written programs,
the prelude, tok2tok, random graphs (tests/ir_strategies.py) and, for {0, 1} inputs, exhaustively over all
sequences up to length 8.
"""

from __future__ import annotations

import itertools
import math
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ir_strategies import STATEFUL, graphs

from lsrl import compile_source, interpret, load_program
from lsrl.analysis.ranges import DEFAULT_MAX_LEN, Val, analyze, v_join, v_lin, v_meet, v_mul, v_relu
from lsrl.diagnostics import LsrlError
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.program import Domain

ROOT = Path(__file__).resolve().parent.parent
F = Fraction
SETTINGS = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@pytest.fixture(autouse=True)
def _debug(monkeypatch):
    """Contradictory facts (an empty meet) are bugs: fail instead of falling back."""
    monkeypatch.setattr("lsrl.analysis.ranges.limits._DEBUG", True)  # read there as limits._DEBUG


# ---------------------------------------------------------------- helpers


def rational(graph: ir.Graph) -> ir.Graph:
    """The same graph with every float coefficient replaced by the exact rational it is."""

    def q(c):
        return None if c is None else Coeffs(np.vectorize(lambda v: Fraction(v), otypes=[object])(c.data))

    nodes = []
    for n in graph.nodes:
        op = n.op
        if isinstance(op, ir.Linear):
            op = ir.Linear(tuple(q(m) for m in op.mats), q(op.bias))
        elif isinstance(op, ir.LinState):
            op = ir.LinState(q(op.A), q(op.B), q(op.bias), q(op.init))
        nodes.append(ir.Node(n.id, op, n.args, n.dim, n.span, n.label))
    return ir.Graph(tuple(nodes), graph.input, graph.output, graph.probes, graph.name)


def as_fractions(x) -> np.ndarray:
    x = np.asarray(x, dtype=object)
    out = np.empty(x.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(v) for v in x.reshape(-1)]
    return out


def check_sound(graph: ir.Graph, ranges, x: np.ndarray) -> int:
    """Run exactly on x (batch, time, dim) and check every traced value against every claim; count checks."""
    values = interpret(rational(graph), as_fractions(x), exact=True, trace=True).values
    checked = 0
    for n in graph.nodes:
        nr = ranges[n.id]
        vals = nr.vals
        arr = values[n.id]
        for i in range(n.dim):
            seen = set(arr[..., i].reshape(-1).tolist())
            for v in seen:
                where = f"%{n.id}[{i}] = {v} ({ranges.describe(n.id)})"
                assert nr.lo[i] <= v <= nr.hi[i], where
                assert not nr.integer[i] or v.denominator == 1, where
                assert not nr.boolean[i] or v in (0, 1), where
                assert nr.values[i] is None or v in nr.values[i], where
                assert vals[i].contains(v), where
            checked += len(seen)
    return checked


def domain_inputs(domain: Domain | None, rng: np.random.Generator, batch: int, length: int, dim: int):
    """Inputs from the domain (rationals), with edge cases: constant sequences at the extremes."""
    if domain is not None and domain.kind == "set":
        pool = [Fraction(v) for v in domain.values]
    elif domain is not None:
        lo, hi = domain.values
        lo = Fraction(lo) if math.isfinite(lo) else Fraction(-7)
        hi = Fraction(hi) if math.isfinite(hi) else Fraction(7)
        pool = sorted({lo, hi, (lo + hi) / 2, lo + (hi - lo) / 3, lo + (hi - lo) * F(7, 8)})
    else:
        pool = [F(k, 4) for k in range(-16, 17)]
    x = np.empty((batch, length, dim), dtype=object)
    x.reshape(-1)[:] = [pool[i] for i in rng.integers(0, len(pool), x.size)]
    x[0] = pool[0]
    if batch > 1:
        x[1] = pool[-1]
    return x


def compile_text(body: str, decl: str = "input x[1] in {0, 1}"):
    prog = compile_source(f"{decl}\n{body}", "t.lsrl")
    return prog.graph, prog.input.domain


# ---------------------------------------------------------------- abstract values


def test_lattice_arithmetic():
    a = Val.lat(F(0), F(1), F(0), F(100))  # integers 0..100
    b = v_lin([(F(1, 2), a)], F(1, 3))
    assert (b.off, b.step, b.lo, b.hi) == (F(1, 3), F(1, 2), F(1, 3), F(151, 3))
    c = v_lin([(F(2, 3), a), (F(3, 4), a)], F(0))  # steps 2/3 and 3/4: gcd 1/12
    assert c.step == F(1, 12)
    r = v_relu(v_lin([(F(1), a)], F(-10)))
    assert r.lo == 0 and r.hi == 90 and r.integer()
    m = v_mul(Val.of_set([F(0), F(1)]), a)
    assert m.integer() and (m.lo, m.hi) == (0, 100)
    j = v_join([Val.const(F(0)), Val.lat(F(1), F(2), F(1), F(99))])
    assert j.step == 1 and (j.lo, j.hi) == (0, 99)
    s = v_meet(Val.of_set([F(k) for k in range(10)]), Val.lat(F(1), F(3), F(0), F(20)))
    assert s.values() == (F(1), F(4), F(7))
    assert Val.lat(F(0), F(1), F(0), F(1)).boolean()
    assert Val.of_set([F(1, 2)], F(1, 100)).contains(F(51, 100)) and not Val.of_set([F(1, 2)]).contains(F(51, 100))


# ---------------------------------------------------------------- prelude precision


PRELUDE_BOOLEANS = {
    "step": "step(x[0] - 3)",
    "larger": "larger(x[0], 2)",
    "smaller": "smaller(x[0], 2)",
    "eq": "eq(x[0], 4)",
    "neq": "neq(x[0], 4)",
    "bump": "bump(x[0], 2, 5)",
    "and": "and(larger(x[0], 2), smaller(x[0], 7))",
    "or": "or(eq(x[0], 1), eq(x[0], 8))",
    "not": "not(larger(x[0], 2))",
    "xor": "xor(larger(x[0], 2), smaller(x[0], 7))",
    "step_float_scale": "step(x[0] - 3, sqrt(2) * 100)",
    "eq_counter": "eq(counter(), 5)",
    "larger_counter_input": "larger(counter(), x[0])",
    "mod_onehot": "mod_onehot(5)",
    "cyclic_onehot": "cyclic_onehot(4)",
}


@pytest.mark.parametrize("name", sorted(PRELUDE_BOOLEANS))
def test_prelude_comparisons_are_boolean(name):
    g, dom = compile_text(f"output {PRELUDE_BOOLEANS[name]}", "input x[1] in {0..9}")
    r = analyze(g, dom, 64)
    assert r.is_boolean(g.output), r.describe(g.output)
    check_sound(g, r, domain_inputs(dom, np.random.default_rng(0), 8, 12, 1))


def test_prelude_comparisons_on_unbounded_inputs():
    """step/eq of an input without domain: still 0/1 on integer lattices, [0, 1] on reals."""
    prog = compile_source("input x[1]\nstate acc = 0\nacc <- acc + 1\nprobe e = eq(acc, 3)\n"
                          "output step(x[0])", "t.lsrl")
    r = analyze(prog.graph, None, 100)
    assert r.is_boolean(dict(prog.graph.probes)["e"])
    out = r[prog.graph.output]
    assert (out.lo[0], out.hi[0]) == (0, 1) and not out.boolean[0]  # x real: step is a ramp in between
    assert r.bound(prog.graph.input) == math.inf


def test_ifelse_mul_conditions_and_bounds():
    src = """
let t = counter()
let c = larger(t, 5)
let m = mod_counter(3)
output ifelse_mul(and(c, eq(m, 1)), x[0], t)
"""
    g, dom = compile_text(src, "input x[1] in {0..9}")
    r = analyze(g, dom, 100)
    multis = [n for n in g.nodes if isinstance(n.op, ir.Multi)]
    assert multis
    for n in multis:
        a, b = n.args
        assert r.is_boolean(a) or r.is_boolean(b), r.describe(n.id)
        other = b if r.is_boolean(a) else a
        assert r.bound(other) <= 99, r.describe(other)
    check_sound(g, r, domain_inputs(dom, np.random.default_rng(1), 6, 30, 1))


@pytest.mark.parametrize("max_len", [1, 2, 20, 4096, 10 ** 6])
def test_counters_are_exact(max_len):
    g, dom = compile_text("let t = counter()\nlet k = mod_counter(4)\nprobe kk = k\noutput 3 * t - 1")
    r = analyze(g, dom, max_len)
    t = next(n.id for n in g.nodes if n.label == "t")
    assert r[t].lo == (0,) and r[t].hi == (max_len - 1,) and r.is_integer(t)
    assert r.values(t) == (tuple(F(k) for k in range(max_len)) if max_len <= 4096 else None)
    assert r[t].values[0] == (r.values(t) if max_len <= 256 else None)
    out = r[g.output]
    assert (out.lo[0], out.hi[0]) == (-1, 3 * max_len - 4) and r.is_integer(g.output)
    k = dict(g.probes)["kk"]
    if max_len <= 65536:  # orbits are simulated up to 2^16 steps
        assert r.values(k) == tuple(F(v) for v in range(min(4, max_len)))


def test_accumulators_and_shift_registers():
    src = """
state acc = 0
acc <- acc + 2 * x[0] + 1
state buf[3] = 0
buf <- shift_matrix(3) @ buf + cat(zeros(2), x[0])
state decay = 0
decay <- decay / 2 + x[0]
output cat(acc, buf, decay)
"""
    g, dom = compile_text(src)
    r = analyze(g, dom, 20)
    out = r[g.output]
    assert (out.lo[0], out.hi[0]) == (1, 60) and out.integer[0]  # acc_t in [t, 3t]
    assert all(out.boolean[1:4])
    assert 0 <= out.lo[4] and out.hi[4] <= 2.0001
    for length in range(1, 9):
        xs = np.array(list(itertools.product([0, 1], repeat=length)), dtype=object)[..., None]
        check_sound(g, r, xs)


def test_accumulators_whose_drive_falls_quiet():
    """A register written only while a step-counter condition holds sums at most that many drives: the query
    latch of vec2vec (written at step 0) is bounded by one input, not by max_len of them, and a sum taken over
    the first 5 steps by 5. A drive that never falls quiet keeps the max_len bound."""
    src = """
let t = counter()
state q = 0
q <- q + ifelse(smaller(t, 1 / 2, 2), x[0], 0, 10)
state first = 0
first <- first + ifelse(smaller(t, 5 - 1 / 2, 2), x[0], 0, 10)
state late = 0
late <- late + ifelse(larger(t, 5 - 1 / 2, 2), x[0], 0, 10)
output cat(q, first, late)
"""
    g, dom = compile_text(src, "input x[1] in [-3, 3]")
    r = analyze(g, dom, 64)
    out = r[g.output]
    assert (out.lo[0], out.hi[0]) == (-3, 3)
    assert (out.lo[1], out.hi[1]) == (-15, 15)
    assert (out.lo[2], out.hi[2]) == (-64 * 3, 64 * 3)  # written from step 5 on: no quiet tail
    assert any("drive 0 after step 1" in note for note in r.notes.values())
    rng = np.random.default_rng(0)
    for length in (1, 4, 9, 64):
        check_sound(g, r, domain_inputs(dom, rng, 8, length, 1))


def test_rotation_state_orbit_is_joint():
    g, dom = compile_text("state s[2] = [1, 0]\ns <- rotation(2 * pi / 6) @ s\noutput s[0] + s[1]")
    r = analyze(g, dom, 4096)
    s = next(n.id for n in g.nodes if isinstance(n.op, ir.LinState))
    assert len(r.orbits[s][0][1]) == 6 and "6 points" in r.notes[s]
    out = r[g.output]  # cos + sin over the 6 directions: max sqrt(3)/2 + 1/2, never sqrt(2)
    assert out.hi[0] < 1.3661 and out.lo[0] > -1.3661 and out.float_derived[0]
    check_sound(g, r, np.zeros((1, 13, 1), dtype=object))


def test_require_bound_names_the_value():
    prog = compile_source("input x[2]\nlet y = relu(x[0]) + 1\noutput y * x[1]", "nb.lsrl")
    r = analyze(prog.graph, prog.input.domain)
    y = next(n.id for n in prog.graph.nodes if n.label == "y")
    with pytest.raises(LsrlError) as exc:
        r.require_bound(y, "the rnn backend's gate constant")
    d = exc.value.diagnostics[0]
    assert d.code == "E0601" and "`y`" in d.message and d.span.line == 2 and "domain" in d.hint
    assert "--max-len" in d.hint
    bounded = compile_source("input x[2] in [-3, 5]\noutput x", "b.lsrl")
    assert analyze(bounded.graph, bounded.input.domain).require_bound(bounded.graph.output, "test") == 5


def test_interval_domain_and_default_max_len():
    prog = compile_source("input x[1] in [-1/2, 3]\nstate acc = 0\nacc <- acc + x[0]\noutput acc", "i.lsrl")
    r = analyze(prog.graph, prog.input.domain)
    assert r.max_len == DEFAULT_MAX_LEN == 4096
    out = r[prog.graph.output]
    assert (out.lo[0], out.hi[0]) == (F(-4096, 2), 3 * 4096) and not out.integer[0]


# ---------------------------------------------------------------- tok2tok


def tok2tok_multis(graph, ranges):
    rows = []
    for n in graph.nodes:
        if isinstance(n.op, ir.Multi):
            a, b = n.args
            cond = a if ranges.is_boolean(a) else b if ranges.is_boolean(b) else None
            rows.append((n.id, cond, None if cond is None else ranges.bound(b if cond == a else a)))
    return rows


@pytest.mark.parametrize("optimised", [False, True])
def test_tok2tok_gates_are_proven(optimised):
    prog = load_program(str(ROOT / "programs" / "tok2tok.lsrl"))
    g = prog.graph
    if optimised:
        passes = pytest.importorskip("lsrl.passes")
        g = passes.optimize(g)[0]
    t0 = time.perf_counter()
    r = analyze(g, prog.input.domain, 4096)
    elapsed = time.perf_counter() - t0
    rows = tok2tok_multis(g, r)
    assert len(rows) == 12  # T = 3 picks into query, query_here, reg and the output
    for node, cond, bound in rows:
        assert cond is not None, r.describe(node)
        assert bound <= 9 * 4096, r.describe(node)  # a token (9) or a register
    assert elapsed < 5, elapsed


def test_tok2tok_sound_exact_and_float():
    prog = load_program(str(ROOT / "programs" / "tok2tok.lsrl"))
    g, dom = prog.graph, prog.input.domain
    r = analyze(g, dom, 24)
    rng = np.random.default_rng(5)
    # the protocol: query, then (key ++ value) pairs with a matching key somewhere; plus random streams
    x = domain_inputs(dom, rng, 6, 24, 1)
    x[2, :, 0] = [F(v) for v in [1, 2, 3, 4, 5, 6, 7, 8, 9, 1, 2, 3, 9, 9, 9, 0, 0, 0, 1, 1, 1, 2, 2, 2]]
    check_sound(g, r, x)
    # float64 interpreter on long sequences: within rounding of the claims
    r = analyze(g, dom, 300)
    xf = prog.input.sample(np.random.default_rng(6), 4, 300)
    values = interpret(g, xf, trace=True).values
    for n in g.nodes:
        nr = r[n.id]
        for i in range(n.dim):
            v = values[n.id][..., i]
            tol = 1e-9 * max(1.0, float(np.abs(v).max()))
            assert float(nr.lo[i]) - tol <= v.min() and v.max() <= float(nr.hi[i]) + tol, r.describe(n.id)
            if nr.boolean[i]:
                assert np.all(np.minimum(np.abs(v), np.abs(v - 1)) <= tol), r.describe(n.id)


# ---------------------------------------------------------------- exhaustive and random programs

EXHAUSTIVE = {
    "switches": """
let t = counter()
let a = and(larger(t, 2), x[0])
let b = or(eq(mod_counter(3), 1), not(x[0]))
state seen = 0
seen <- seen + and(a, b)
output cat(a, b, seen, ifelse_mul(a, seen, t), step(seen - t + 1 / 2))
""",
    "matching": """
state last = 0
last <- [[0]] @ last + x[0]
state prev[2] = 0
prev <- [[0, 1], [0, 0]] @ prev + cat(0, x[0])
let same = eq(prev[0], x[0])
state runs = 0
runs <- runs + same
output cat(same, runs, relu(runs - 2) - relu(runs - 3), bump(runs, 1, 2), ifelse(same, runs, 5 - runs, 64))
""",
    "cyclic": """
let oh = cyclic_onehot(3)
state acc[3] = 0
acc <- acc + oh * x[0]
output cat(oh, acc, sum(oh * acc), max(acc[0], acc[1]), min(acc[2], 1), abs(acc[0] - acc[1]))
""",
}


@pytest.mark.parametrize("name", sorted(EXHAUSTIVE))
def test_exhaustive_binary_sequences(name):
    g, dom = compile_text(EXHAUSTIVE[name])
    r = analyze(g, dom, 8)
    total = 0
    for length in range(1, 9):
        xs = np.array(list(itertools.product([0, 1], repeat=length)), dtype=object)[..., None]
        total += check_sound(g, r, xs)
    assert total > 0


DOMAINS = st.one_of(
    st.none(),
    st.lists(st.sampled_from([F(k, 2) for k in range(-4, 5)]), min_size=1, max_size=4, unique=True).map(
        lambda v: Domain("set", tuple(sorted(v)))),
    st.tuples(st.sampled_from([F(-2), F(-1, 2), F(0), F(1)]), st.sampled_from([F(0), F(1), F(3, 2)])).filter(
        lambda p: p[0] <= p[1]).map(lambda p: Domain("interval", p)),
    st.sampled_from([Domain("interval", (-math.inf, F(1))), Domain("interval", (F(0), math.inf))]),
)


@SETTINGS
@given(graphs(max_nodes=10, max_dim=3, floats=False, kinds=STATEFUL), DOMAINS, st.integers(0, 2 ** 32 - 1))
def test_random_graphs_sound(graph, domain, seed):
    rng = np.random.default_rng(seed)
    max_len = int(rng.integers(1, 9))
    r = analyze(graph, domain, max_len)
    check_sound(graph, r, domain_inputs(domain, rng, 3, max_len, graph.input_dim))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_nodes=10, max_dim=3, floats=False, kinds=STATEFUL), DOMAINS, st.integers(0, 2 ** 32 - 1))
def test_known_ranges_are_taken_as_given_and_stay_sound(graph, domain, seed):
    """Seeding some nodes with their proven ranges (as after legalisation) keeps those ranges and the rest
    sound, though correlations through the seeded nodes are lost."""
    rng = np.random.default_rng(seed)
    max_len = int(rng.integers(1, 9))
    full = analyze(graph, domain, max_len)
    known = {n.id: full[n.id] for n in graph.nodes if rng.random() < 0.5}
    r = analyze(graph, domain, max_len, known)
    assert all(r[i].lo == full[i].lo and r[i].hi == full[i].hi for i in known)
    check_sound(graph, r, domain_inputs(domain, rng, 3, max_len, graph.input_dim))


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_nodes=8, max_dim=2, floats=True), DOMAINS, st.integers(0, 2 ** 32 - 1))
def test_random_float_graphs_sound(graph, domain, seed):
    rng = np.random.default_rng(seed)
    max_len = int(rng.integers(1, 7))
    r = analyze(graph, domain, max_len)
    check_sound(graph, r, domain_inputs(domain, rng, 2, max_len, graph.input_dim))


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(graphs(max_nodes=10, max_dim=2, floats=False))
def test_random_graphs_binary_exhaustive(graph):
    dom = Domain("set", (F(0), F(1)))
    r = analyze(graph, dom, 4)
    d = graph.input_dim
    for length in range(1, 5):
        combos = list(itertools.product([0, 1], repeat=length * d))
        xs = np.array(combos, dtype=object).reshape(len(combos), length, d)
        check_sound(graph, r, xs)


def test_optimised_graphs_keep_facts():
    passes = pytest.importorskip("lsrl.passes")
    for body in EXHAUSTIVE.values():
        g, dom = compile_text(body)
        go = passes.optimize(g)[0]
        r0, r1 = analyze(g, dom, 8), analyze(go, dom, 8)
        for rr, gg in ((r0, g), (r1, go)):
            xs = np.array(list(itertools.product([0, 1], repeat=6)), dtype=object)[..., None]
            check_sound(gg, rr, xs)
        assert r0.is_boolean(g.output) == r1.is_boolean(go.output)
        assert r1.bound(go.output) <= r0.bound(g.output)


# ---------------------------------------------------------------- random prelude programs


@st.composite
def prelude_programs(draw):
    """LSRL text mixing counters, orbits, accumulators, comparisons, logic and gates (what backends meet)."""
    lines, pool, bools = ["let t = counter()"], ["x[0]", "t"], []
    k = 0

    def pick(kind=None):
        src = bools if kind == "bool" and bools else pool
        return draw(st.sampled_from(src))

    for _ in range(draw(st.integers(3, 9))):
        k += 1
        name = f"v{k}"
        kind = draw(st.sampled_from(["cmp", "cmp", "logic", "logic", "gate", "arith", "state", "orbit", "mul",
                                     "mix", "count"]))
        const = draw(st.sampled_from(["0", "1", "2", "5/2", "-1"]))
        scale = draw(st.sampled_from(["1000", "2", "1/2", "sqrt(2)"]))
        if kind == "cmp":
            fn = draw(st.sampled_from(["step({a} - {c}, {s})", "larger({a}, {b}, {s})", "smaller({a}, {c}, {s})",
                                       "eq({a}, {b}, {s})", "bump({a}, {c}, {c} + 2, {s})", "neq({a}, {c})"]))
            expr = fn.format(a=pick(), b=pick(), c=const, s=scale)
            bools.append(name)
        elif kind == "logic" and bools:
            fn = draw(st.sampled_from(["and({p}, {q})", "or({p}, {q})", "not({p})", "xor({p}, {q})"]))
            expr = fn.format(p=pick("bool"), q=pick("bool"))
            bools.append(name)
        elif kind == "gate" and bools:
            fn = draw(st.sampled_from(["ifelse_mul({p}, {a}, {b})", "ifelse({p}, {a}, {b}, 64)",
                                       "ifelse_step({p}, {a}, {b}, 64)"]))
            expr = fn.format(p=pick("bool"), a=pick(), b=pick())
        elif kind == "arith":
            fn = draw(st.sampled_from(["{a} + {b}", "2 * {a} - {b} + {c}", "relu({a} - {c})", "max({a}, {b})",
                                       "min({a}, {b})", "abs({a} - {b})", "clip({a}, 0, 3)"]))
            expr = fn.format(a=pick(), b=pick(), c=const)
        elif kind == "state":
            upd = draw(st.sampled_from(["s + {a}", "s / 2 + {a}", "{a}", "s + {a} * {p}", "2 * s - {a}"]))
            if "{p}" in upd and not bools:
                upd = "s + {a}"
            lines.append(f"state s{k} = {const}")
            lines.append(f"s{k} <- " + upd.replace("s", f"s{k}", 1).format(a=pick(), p=pick("bool")))
            expr = f"s{k}"
        elif kind == "orbit":
            expr = draw(st.sampled_from(["mod_counter(3)", "mod_onehot(4)[1]", "cyclic_onehot(3)[0]",
                                         "mod_counter(2) + t", "delay({a}, 2)[0]"])).format(a=pick())
        elif kind == "mix":  # a test of one value and one of another, independent of it
            expr = draw(st.sampled_from(["and(bump({a}, {c}, {c} + 1, {s}), larger(mod_counter(3), 1, 2))",
                                         "bump({a}, 1, 2, {s}) - step(t - {c}, 2)",
                                         "or(eq({a}, {c}, {s}), mod_onehot(4)[2])"]))
            expr = expr.format(a=pick(), c=const, s=scale)
            bools.append(name)
        elif kind == "count" and bools:  # flags read only through their count
            expr = draw(st.sampled_from(["larger(sum(delay({p}, 4)), 2, 2)", "sum(delay({p}, 3)) * {a}",
                                         "step(sum(delay({p}, 5)) - 2, 2) - step(sum(delay({p}, 5)) - 4, 2)"]))
            expr = expr.format(p=pick("bool"), a=pick())
        else:
            expr = f"{pick()} * {pick()}"
        lines.append(f"let {name} = {expr}")
        pool.append(name)
    outs = draw(st.lists(st.sampled_from(pool[2:] or pool), min_size=1, max_size=3))
    lines.append(f"output cat({', '.join(outs)})")
    return "\n".join(lines)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prelude_programs(), st.integers(0, 2 ** 32 - 1))
def test_random_prelude_programs_sound(text, seed):
    prog = compile_source("input x[1] in {0, 1, 2, 3}\n" + text, "rand.lsrl")
    rng = np.random.default_rng(seed)
    max_len = int(rng.integers(1, 11))
    r = analyze(prog.graph, prog.input.domain, max_len)
    check_sound(prog.graph, r, domain_inputs(prog.input.domain, rng, 6, max_len, 1))


def test_many_kinks_of_one_counter():
    """parity as a sum of 16 alternating ramps of the running count: exactly 0/1 up to length 16."""
    src = """
let ones = accumulate(x)
let ks = range(1, 17)
output ones + [2 * (-1) ** k for k in ks] @ relu(repeat(ones, 16) - ks)
"""
    g, dom = compile_text(src)
    r = analyze(g, dom, 16)
    assert r.is_boolean(g.output), r.describe(g.output)
    out = analyze(g, dom, 40)[g.output]
    assert (out.lo[0], out.hi[0]) == (0, 24)  # beyond 16 ones the ramps run out: ones - 16
    xs = np.array(list(itertools.product([0, 1], repeat=8)), dtype=object)[..., None]
    check_sound(g, r, xs)


def test_a_cone_over_the_step_number_is_evaluated_at_every_step(monkeypatch):
    """A zigzag of 40 ramps of the step number t (t mod 2 up to t = 40, then a ramp): its support is t alone,
    evaluated at every t in 1..max_len at once, which gives exactly the values the program takes (piecewise
    evaluation would cut t's range at every kink), at least as tight as without the shortcut."""
    from lsrl.analysis.ranges.support import _Enumeration

    src = """
state t = 0
t <- t + 1
let ks = range(1, 41)
output t + [2 * (-1) ** k for k in ks] @ relu(repeat(t, 40) - ks)
"""
    g, dom = compile_text(src)
    used = []
    by_value = _Enumeration._by_value
    monkeypatch.setattr(_Enumeration, "_by_value", lambda self: used.append(by_value(self)) or used[-1])
    r = analyze(g, dom, 300)
    monkeypatch.undo()
    assert any(v is not None for v in used)
    zigzag = [t + sum(2 * (-1) ** k * max(t - k, 0) for k in range(1, 41)) for t in range(1, 301)]
    assert r.values(g.output) == tuple(sorted(set(zigzag)))
    _at_least_as_tight(r, _analyze_without_shortcuts(monkeypatch, g, dom, 300), g)


def test_sums_that_fusion_shared_out_are_reused():
    # fuse_linear substitutes query_here = sum_i pick(ohT[i], query[i]) into every reader, e.g. the four ReLU
    # arguments of same(x, query_here); reading the refined sum back (x is independent of it) proves
    # `matching` boolean, where enumerating each reader's support alone only bounded it by ~1e8
    from lsrl.passes import optimize

    prog = load_program(str(ROOT / "programs/tok2tok.lsrl"), {"T": 3, "gated": 0})
    g, _ = optimize(prog.graph)
    r = analyze(g, prog.input.domain, 512)
    matching = next(n.id for n in g.nodes if n.label == "matching")
    assert r.is_boolean(matching), r.describe(matching)
    check_sound(g, r, domain_inputs(prog.input.domain, np.random.default_rng(3), 4, 40, 1))


def test_orbit_simulation_paths_agree():
    # plain-float simulation (n <= 8, unrolled for n = 2) and the numpy one (larger blocks) are the same
    # float64 recurrence up to summation order; a block of 5 rotations by 2 pi / 6 has 6 orbit points
    from lsrl.analysis.ranges.arith import Q
    from lsrl.analysis.ranges.states import _orbit_float, _simulate, _simulate_np

    c, s = math.cos(math.pi / 3), math.sin(math.pi / 3)
    A = np.kron(np.eye(5), np.array([[c, -s], [s, c]]))
    s0 = np.tile([1.0, 0.0], 5)
    for n in (2, 6, 10):
        fast = np.array(_simulate(A[:n, :n].tolist(), [0.0] * n, s0[:n].tolist(), 60))
        assert np.allclose(fast, _simulate_np(A[:n, :n], np.zeros(n), s0[:n], 60), rtol=0, atol=1e-12)
    orbit = _orbit_float([[Q(float(a)) for a in row] for row in A], [Q(0)] * 10, [Q(float(v)) for v in s0], 300)
    assert len(orbit) == 6 and all(period == 6 for _, _, (_, period) in orbit)


@settings(max_examples=40, deadline=None)
@given(st.integers(2, 3), st.integers(1, 12), st.data())
def test_float_orbit_balls_hold_the_exact_orbit(n, period, data):
    """Every exact state s_t lies in the ball of a cluster whose step lattice holds t (max norm)."""
    from lsrl.analysis.ranges.arith import Q
    from lsrl.analysis.ranges.states import _orbit_float

    c, s = math.cos(2 * math.pi / period), math.sin(2 * math.pi / period)
    A = np.eye(n)
    A[:2, :2] = [[c, -s], [s, c]]  # a rotation (periodic up to rounding) beside decaying coordinates
    for i in range(2, n):
        A[i, i] = data.draw(st.sampled_from([0.5, -0.25, 0.0]))
    Aq = [[Q(float(a)) for a in row] for row in A]
    b = [Q(0), Q(0)] + [Q(data.draw(st.integers(-3, 3))) for _ in range(n - 2)]
    s0 = [Q(data.draw(st.integers(-4, 4)), 2) for _ in range(n)]
    L = data.draw(st.integers(1, 80))
    balls = _orbit_float(Aq, b, s0, L)
    assert balls is not None
    x = list(s0)
    for t in range(1, L + 1):
        x = [sum((a * v for a, v in zip(row, x, strict=True)), bi) for row, bi in zip(Aq, b, strict=True)]
        assert any(max(abs(p - v) for p, v in zip(rep, x, strict=True)) <= r
                   and (t == first if step == 0 else t >= first and (t - first) % step == 0)
                   for rep, r, (first, step) in balls), t


@settings(max_examples=15, deadline=None)
@given(st.integers(2, 12), st.integers(30, 400), st.integers(-4, 4), st.integers(1, 4))
def test_periodic_float_orbit_stops_after_one_period_and_stays_sound(period, L, x0, y0):
    """A rotation's float orbit comes back to s_1 after `period` steps: the simulation stops there, and the
    drift bound keeps every exact state s_1..s_L inside the ball of its step's residue."""
    from lsrl.analysis.ranges.arith import Q
    from lsrl.analysis.ranges.states import _orbit_float, _simulate

    c, s = math.cos(2 * math.pi / period), math.sin(2 * math.pi / period)
    Aq = [[Q(c), Q(-s)], [Q(s), Q(c)]]
    s0 = [Q(x0), Q(y0)]
    assert len(_simulate([[c, -s], [s, c]], [0.0, 0.0], [float(x0), float(y0)], L)) == min(period + 2, L + 1)
    balls = _orbit_float(Aq, [Q(0), Q(0)], s0, L)
    assert balls is not None and len(balls) <= period
    x = s0
    for t in range(1, L + 1):
        x = [Aq[0][0] * x[0] + Aq[0][1] * x[1], Aq[1][0] * x[0] + Aq[1][1] * x[1]]
        assert any(max(abs(p - v) for p, v in zip(rep, x, strict=True)) <= r and t >= first
                   and (t - first) % step == 0 for rep, r, (first, step) in balls), t


def _analyze_without_shortcuts(monkeypatch, *args):
    """The analysis with every enumeration over the full product of its members' cases, and every sum
    enumerated afresh."""
    from lsrl.analysis.ranges.analysis import _Analysis
    from lsrl.analysis.ranges.arith import ONE
    from lsrl.analysis.ranges.support import _Enumeration

    with monkeypatch.context() as m:
        m.setattr(_Analysis, "_rescaled_sum", lambda self, w: None)
        m.setattr(_Enumeration, "_split_sum", lambda self: None)
        m.setattr(_Enumeration, "_by_value", lambda self: None)
        m.setattr(_Enumeration, "_lumps", lambda self, ms: [[(x, ONE)] for x in ms])
        return analyze(*args)


def _at_least_as_tight(r_new, r_old, g):
    for n in g.nodes:
        a, b = r_new[n.id], r_old[n.id]
        for i in range(n.dim):
            assert a.lo[i] >= b.lo[i] and a.hi[i] <= b.hi[i], (n.id, i)
            assert (a.integer[i] or not b.integer[i]) and (a.boolean[i] or not b.boolean[i]), (n.id, i)


def test_enumeration_shortcuts_lose_nothing(monkeypatch):
    """Splitting a sum into independent parts, lumping flags read only through their total, and rescaling
    an earlier refined sum with proportional coefficients give the same ranges (or tighter, where the full
    product would hit a work limit); here 8 flags are read through their count (256 cases, lumped into 9),
    `matching` sums a test of x with one of the step number, and each step's two ramps share a direction."""
    from lsrl.passes import optimize

    prog = load_program(str(ROOT / "programs/tok2tok.lsrl"), {"T": 8, "gated": 1})
    g, _ = optimize(prog.graph)
    r = analyze(g, prog.input.domain, 512)
    _at_least_as_tight(r, _analyze_without_shortcuts(monkeypatch, g, prog.input.domain, 512), g)
    for label in ("matching", "all_matching"):
        node = next(n.id for n in g.nodes if n.label == label)
        assert r.is_boolean(node), r.describe(node)


def test_members_read_through_proportional_sums_are_one_coordinate(monkeypatch):
    """bump(x - q) and |x - q| read x and the accumulator q only through x - q and q - x: they are lumped
    with scales 1 and -1 into one symbolic coordinate (no row per value of x), with the ranges of the full
    product."""
    from lsrl.analysis.ranges.support import _Enumeration
    from lsrl.passes import optimize

    prog = compile_source("input x[1] in {0..9}\nstate q = 0\nq <- q + x\n"
                          "output cat(bump(x - q, -1 / 2, 1 / 2), relu(x - q) + relu(q - x))\n",
                          "lump.lsrl")
    g, _ = optimize(prog.graph)  # fusion makes x - q and q - x the sums the ReLUs read
    seen = []
    lumps = _Enumeration._lumps
    monkeypatch.setattr(_Enumeration, "_lumps", lambda self, ms: seen.append(lumps(self, ms)) or seen[-1])
    r = analyze(g, prog.input.domain, 64)
    monkeypatch.undo()
    assert any(sorted(s for _, s in group) == [-1, 1] for groups in seen for group in groups)
    _at_least_as_tight(r, _analyze_without_shortcuts(monkeypatch, g, prog.input.domain, 64), g)
    out = r[g.output]
    assert out.boolean[0] and (out.lo[1], out.hi[1]) == (0, 9 * 64), r.describe(g.output)  # |x - q|


@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(prelude_programs(), st.integers(1, 10))
def test_enumeration_shortcuts_lose_nothing_on_random_programs(monkeypatch, text, max_len):
    prog = compile_source("input x[1] in {0, 1, 2, 3}\n" + text, "rand.lsrl")
    r = analyze(prog.graph, prog.input.domain, max_len)
    _at_least_as_tight(r, _analyze_without_shortcuts(monkeypatch, prog.graph, prog.input.domain, max_len), prog.graph)


def _congruence_by_rounds(A, dv, s0):
    """The plain fixed-point iteration the worklist replaces: every component recomputed each round."""
    from lsrl.analysis.ranges.arith import ZERO, _gcd

    n = len(A)
    dl = [v.lattice() for v in dv]
    cur = [(s0[i], ZERO) for i in range(n)]

    def norm(lt):
        return lt if lt is None or lt[1] == 0 else (lt[0] % lt[1], lt[1])

    for _ in range(n + 64):
        nxt = []
        for i in range(n):
            if dl[i] is None or any(cur[j] is None for j in range(n) if A[i][j]):
                nxt.append(None)
                continue
            off, st = dl[i]
            for j in range(n):
                if A[i][j]:
                    off, st = off + A[i][j] * cur[j][0], _gcd(st, abs(A[i][j]) * cur[j][1])
            nxt.append((off, st))
        joined = [None if c is None or m is None else norm((c[0], _gcd(_gcd(c[1], m[1]), m[0] - c[0])))
                  for c, m in zip(cur, nxt, strict=True)]
        if joined == [norm(c) for c in cur]:
            return [None if c is None or c[1] == 0 else c for c in joined]
        cur = joined
    return [None] * n


@settings(max_examples=200, deadline=None)
@given(st.integers(1, 5).flatmap(lambda n: st.tuples(
    st.lists(st.lists(st.sampled_from([0, 0, 0, 1, -1, 2, 3]), min_size=n, max_size=n), min_size=n, max_size=n),
    st.lists(st.one_of(st.none(), st.tuples(st.integers(-6, 6), st.integers(0, 6))), min_size=n, max_size=n),
    st.lists(st.integers(-5, 5), min_size=n, max_size=n))))
def test_congruence_worklist_reaches_the_rounds_fixed_point(case):
    """A shift register's lattice needs as many rounds as it has slots; the worklist recomputes only the
    components whose inputs changed, and must land on the same fixed point."""
    from lsrl.analysis.ranges.arith import Q
    from lsrl.analysis.ranges.states import _congruence
    from lsrl.analysis.ranges.values import Val

    A, drives, s0 = case
    A = [[Q(a) for a in row] for row in A]
    dv = [Val.top() if d is None else Val.lat(Q(d[0]), Q(d[1]), Q(-100), Q(100)) for d in drives]
    s0 = [Q(x) for x in s0]
    assert _congruence(A, dv, s0) == _congruence_by_rounds(A, dv, s0)
