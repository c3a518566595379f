"""The optimiser: each rule fires on a small program, and every pass and the pipeline preserve semantics.

Property tests draw random graphs (tests/ir_strategies.py) and compare the interpreter before and after
in exact mode (equality) and float mode (allclose), and check exactness, determinism and idempotence.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ir_strategies import KINDS, STATEFUL, graphs, inputs

import lsrl
from lsrl import compile_source, interpret
from lsrl.diagnostics import LsrlError
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.passes import Pass
from lsrl.ir.printer import dump
from lsrl.passes import PASS_NAMES, PASSES, PIPELINE, optimize
from lsrl.passes.merge_states import positions
from lsrl.passes.rewrite import VIEWS, GraphBuilder

PROGRAMS = sorted((Path(__file__).resolve().parent.parent / "programs").glob("*.lsrl"))
SETTINGS = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def fractions(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(v) for v in x.reshape(-1)]
    return out


def assert_same(g0: ir.Graph, g1: ir.Graph, x: np.ndarray) -> None:
    """Same output and probes: exactly when both graphs are rational, and within 1e-9 in float64."""
    if g0.exact:
        assert g1.exact, "a pass introduced a float coefficient"
        xe = x if x.dtype == object else fractions(x)
        r0, r1 = interpret(g0, xe, exact=True), interpret(g1, xe, exact=True)
        assert r0.output.tolist() == r1.output.tolist()
        assert {k: v.tolist() for k, v in r0.probes.items()} == {k: v.tolist() for k, v in r1.probes.items()}
    xf = x.astype(float)
    r0, r1 = interpret(g0, xf), interpret(g1, xf)
    scale = max(1.0, *(float(np.abs(v).max(initial=0)) for v in (r0.output, *r0.probes.values())))
    np.testing.assert_allclose(r1.output, r0.output, rtol=1e-9, atol=1e-9 * scale)
    assert r1.probes.keys() == r0.probes.keys()
    for k in r0.probes:
        np.testing.assert_allclose(r1.probes[k], r0.probes[k], rtol=1e-9, atol=1e-9 * scale)


def run(name: str, g: ir.Graph) -> tuple[ir.Graph, dict[str, int]]:
    new, report = PASSES[name](g)
    return new, report.rewrites


def ops(g: ir.Graph, kind: type[ir.Op]) -> list[ir.Node]:
    return [n for n in g.nodes if isinstance(n.op, kind)]


def program(src: str) -> ir.Graph:
    return compile_source(src, "t.lsrl").graph


X1 = np.random.default_rng(0).uniform(-2, 2, (3, 6, 1))
X2 = np.random.default_rng(1).uniform(-2, 2, (3, 6, 2))


def built(fn, in_dim: int = 1) -> ir.Graph:
    """A hand-built graph: fn(builder, input id) returns (output, probes)."""
    b = GraphBuilder()
    x = b.add(ir.Input(in_dim), (), None, "x")
    out, probes = fn(b, x)
    return b.build(x, out, probes, ir.Graph((b[x],), x, x), prune=False)


def const(*v) -> ir.Linear:
    return ir.Linear((), Coeffs(list(v)))


def lin(*mats, bias) -> ir.Linear:
    return ir.Linear(tuple(Coeffs(m) for m in mats), Coeffs(bias))


# ---------------------------------------------------------------- dce


def test_dce_drops_dead_nodes_and_keeps_the_input():
    def f(b, x):
        b.add(ir.ReLU(), (x,))  # dead
        b.add(ir.LinState(Coeffs([[1]]), Coeffs([[1]]), Coeffs([0]), Coeffs([0])), (x,))  # dead state
        c = b.add(const(3))
        p = b.add(ir.ReLU(), (c,))
        return c, [("p", p)]

    g = built(f)
    new, counts = run("dce", g)
    assert len(new) == 3 and counts["removed"] == 2
    assert isinstance(new[new.input].op, ir.Input)
    assert_same(g, new, X1)


# ---------------------------------------------------------------- cse


def test_cse_merges_equal_expressions_states_and_commuted_gates():
    g = program("""
input x[1] in [-2, 2]
let a = relu(x + 1)
let b = relu(x + 1)
state s = 0
s <- s + a
state r = 0
r <- r + b
output s - r + x * a + a * x
""")
    new, counts = run("cse", g)
    assert len(ops(new, ir.ReLU)) == 1 and len(ops(new, ir.LinState)) == 1 and len(ops(new, ir.Multi)) == 1
    assert counts["shared"] >= 3 and counts["sort_multi_operands"] >= 1
    assert_same(g, new, X1)


def test_cse_keeps_the_first_label():
    g = program("input x[1]\nlet a = relu(x)\nlet b = relu(x)\noutput a + b\n")
    new, _ = run("cse", g)
    assert [n.label for n in ops(new, ir.ReLU)] == ["a"]


# ---------------------------------------------------------------- fold_constants


def test_fold_constants_evaluates_exactly_and_turns_constant_gates_into_linears():
    def f(b, x):
        c = b.add(const(Fraction(-1, 3), Fraction(2, 3)))
        r = b.add(ir.ReLU(), (c,))  # [0, 2/3]
        s = b.add(ir.Slice((1,)), (r,))  # [2/3]
        m = b.add(ir.Multi(), (s, x))  # 2/3 * x, a gate with a constant factor
        z = b.add(lin([[0]], [[1]], bias=[1]), (x, s))  # 0 @ x + 1 @ (2/3) + 1
        cat = b.add(ir.Concat(), (c, r))
        return b.add(lin([[1]], [[1]], bias=[0]), (m, z)), [("cat", cat)]

    g = built(f)
    new, counts = run("fold_constants", g)
    assert not ops(new, ir.Multi) and not ops(new, ir.ReLU)
    out = new[new.output]  # 2/3 x + 5/3
    assert out.op.bias == Coeffs([Fraction(5, 3)]) and len(out.args) == 1
    gate = new[out.args[0]]
    assert gate.op == lin([[Fraction(2, 3)]], bias=[0]) and gate.args == (new.input,)
    assert new[dict(new.probes)["cat"]].op == const(Fraction(-1, 3), Fraction(2, 3), 0, Fraction(2, 3))
    for k in ("relu_of_constant", "slice_of_constant", "multi_by_constant", "drop_zero_terms",
              "constant_terms_into_bias", "concat_of_constants"):
        assert counts[k] >= 1, k
    assert new.exact and all(isinstance(v, Fraction) for n in new.nodes for c in ir.coeffs_of(n.op)
                             for v in c.data.reshape(-1))
    assert_same(g, new, X1)


def test_fold_constants_simplifies_degenerate_states():
    def f(b, x):
        c = b.add(const(2))
        s1 = b.add(ir.LinState(Coeffs([[1]]), Coeffs([[3]]), Coeffs([0]), Coeffs([0])), (c,))  # 6 t
        s2 = b.add(ir.LinState(Coeffs([[0]]), Coeffs([[5]]), Coeffs([1]), Coeffs([7])), (x,))  # 5 x + 1
        s3 = b.add(ir.LinState(Coeffs([[Fraction(1, 2)]]), None, Coeffs([1]), Coeffs([2])), ())  # stays 2
        s4 = b.add(ir.LinState(Coeffs([[1]]), Coeffs([[0]]), Coeffs([1]), Coeffs([0])), (x,))  # B = 0
        return b.add(ir.Concat(), (s1, s2, s3, s4)), []

    g = built(f)
    new, counts = run("fold_constants", g)
    for k in ("constant_into_state", "memoryless_state", "fixed_point_state", "zero_input_state"):
        assert counts[k] == 1, k
    states = ops(new, ir.LinState)
    assert len(states) == 2 and all(not n.args for n in states)
    assert_same(g, new, X1)


# ---------------------------------------------------------------- fuse_linear


def test_fuse_linear_composes_chains_into_one_linear():
    g = program("input x[1]\nlet a = 2 * x + 1\nlet b = 3 * a - 1\nlet c = b / 2 + x\noutput relu(c)\n")
    new, counts = run("fuse_linear", g)
    relu = ops(new, ir.ReLU)[0]
    inner = new[relu.args[0]]
    assert inner.args == (new.input,) and inner.op == lin([[4]], bias=[1])
    assert counts["linear_of_linear"] >= 2
    # named intermediates survive only as views of the input, never as a chain
    assert all(n.args == (new.input,) for n in ops(new, ir.Linear))
    assert {n.label for n in ops(new, ir.Linear)} <= {"a", "b", "c"}
    assert_same(g, new, X1)


def test_fuse_linear_turns_slices_and_concats_into_columns():
    g = program("input x[2]\nlet r = relu(x)\nlet q = relu(-x)\nlet v = cat(r, q)\n"
                "output sum(v[1:3]) + x[0]\n")
    new, counts = run("fuse_linear", g)
    assert not [n for n in ops(new, ir.Slice) + ops(new, ir.Concat) if n.label != "v"]  # `v` stays as a view
    out = new[new.output]
    assert all(not isinstance(new[a].op, (ir.Linear, ir.Slice, ir.Concat)) for a in out.args)
    assert counts["slice_into_linear"] >= 1 or counts["concat_into_linear"] >= 1
    assert_same(g, new, X2)


def test_fuse_linear_feeds_linears_into_state_b_and_bias():
    g = program("input x[2]\nstate s[2] = 0\ns <- [[1, 1], [0, 1]] @ s + 2 * x + 1\noutput s\n")
    new, _ = run("fuse_linear", g)
    (s,) = ops(new, ir.LinState)
    assert s.args == (new.input,) and s.op.B == Coeffs([[2, 0], [0, 2]]) and s.op.bias == Coeffs([1, 1])
    assert len(new) == 2
    assert_same(g, new, X2)


def test_fuse_linear_multi_operand_drive_becomes_a_concat():
    g = program("input x[1]\nlet r = relu(x)\nlet q = relu(-x)\nstate s = 0\n"
                "s <- s + 2 * r - q + 1\noutput s\n")
    new, _ = run("fuse_linear", g)
    (s,) = ops(new, ir.LinState)
    drive = new[s.args[0]]
    assert isinstance(drive.op, ir.Concat) and all(isinstance(new[a].op, ir.ReLU) for a in drive.args)
    assert s.op.B == Coeffs([[2, -1]]) and s.op.bias == Coeffs([1])
    assert_same(g, new, X1)


def test_fuse_linear_slice_and_concat_chains():
    def f(b, x):
        r = b.add(ir.ReLU(), (x,))
        q = b.add(ir.ReLU(), (r,))
        c = b.add(ir.Concat(), (r, b.add(ir.Concat(), (q, x))))  # [r0 r1 q0 q1 x0 x1], flattened
        s = b.add(ir.Slice((3, 2, 1)), (c,))
        ss = b.add(ir.Slice((1, 2)), (s,))  # c[2, 1]
        part = b.add(ir.Slice((1,)), (c,))  # r[1]: inside one part
        halves = b.add(ir.Concat(), (b.add(ir.Slice((0,)), (x,)), b.add(ir.Slice((1,)), (x,))))  # x[0, 1]
        m = b.add(ir.Multi(), (b.add(ir.ReLU(), (ss,)), halves))
        return m, [("part", b.add(ir.ReLU(), (part,)))]

    g = built(f, in_dim=2)
    new, counts = run("fuse_linear", g)
    for k in ("concat_flatten", "slice_of_slice", "slice_of_concat", "concat_of_slices"):
        assert counts[k] >= 1, k
    assert_same(g, new, X2)


# ---------------------------------------------------------------- merge_states


def test_merge_states_merges_parallel_states_block_diagonally():
    g = program("""
input x[1] in [-2, 2]
state ones = 0
state zeros = 0
state clock = 5
ones <- ones + x
zeros <- 1/2 * zeros + (1 - x)
clock <- clock + 1
output relu(cat(ones - zeros, 2 * clock))
""")
    new, counts = run("merge_states", g)
    (s,) = ops(new, ir.LinState)
    assert s.dim == 3 and counts["merged_states"] == 3
    assert s.op.A == Coeffs([[1, 0, 0], [0, Fraction(1, 2), 0], [0, 0, 1]])
    assert s.label == "ones+zeros+clock"
    assert {n.label for n in ops(new, ir.Slice)} >= {"ones", "zeros", "clock"}
    assert_same(g, new, X1)


def test_merge_states_never_merges_a_state_with_its_downstream():
    g = program("""
input x[1]
state a = 0
a <- a + x
state b = 0
b <- b + relu(a)
state c = 0
c <- c + a
state d = 0
d <- d + relu(a) - a
output b + 2 * c + 3 * d
""")
    new, _ = run("merge_states", g)
    pos = positions(new)
    states = ops(new, ir.LinState)
    assert len(states) == 2 and len({pos[s.id] for s in states}) == 2  # b, c, d merged; a kept apart
    assert_same(g, new, X1)


def test_merge_states_keeps_short_lived_states_apart_from_long_lived_ones():
    src = "input x[1]\nstate short = 0\nshort <- short + x\nstate long = 0\nlong <- 2 * long + x\n"
    apart = program(src + "output relu(3 * short) + 2 * long\n")  # short dies at the ReLU, long lives on
    together = program(src + "output 3 * short + 2 * long\n")
    assert len(ops(run("merge_states", apart)[0], ir.LinState)) == 2
    assert len(ops(run("merge_states", together)[0], ir.LinState)) == 1


def test_merge_states_only_merges_when_the_graph_shrinks():
    g = program("input x[1]\nstate p = 0\np <- p + x\nstate q = 0\nq <- 2 * q + x\noutput relu(cat(p, q))\n")
    assert len(ops(run("merge_states", g)[0], ir.LinState)) == 2  # 1 state + 2 Slices the Concat keeps


# ---------------------------------------------------------------- remove_identities


def test_remove_identities():
    def f(b, x):
        i = b.add(lin([[1, 0], [0, 1]], bias=[0, 0]), (x,), label="same")
        s = b.add(ir.Slice((0, 1)), (i,))
        c = b.add(ir.Concat(), (s,))
        keep = b.add(ir.Slice((1, 0)), (c,))
        return b.add(ir.ReLU(), (keep,)), []

    g = built(f, in_dim=2)
    new, counts = run("remove_identities", g)
    assert len(new) == 3 and counts == {"identity_linear": 1, "full_slice": 1, "single_concat": 1}
    assert new[new.input].label == "x"
    assert_same(g, new, X2)


# ---------------------------------------------------------------- the pipeline


def test_pipeline_names_docs_and_upto():
    assert PASS_NAMES == [p.name for p in PIPELINE] and len(set(PASS_NAMES)) == len(PASS_NAMES)
    assert all(isinstance(p, Pass) and p.doc and "\n" not in p.doc for p in PIPELINE)
    g = program("input x[1]\nlet a = relu(x)\nlet b = relu(x)\noutput a + b\n")
    _, reports = optimize(g, upto="cse")
    assert [r.name for r in reports] == PASS_NAMES[:PASS_NAMES.index("cse") + 1]
    with pytest.raises(ValueError):
        optimize(g, upto="nonsense")


def test_pipeline_on_a_gated_counter_program():
    g = program("""
input x[1] in {0, 1}
state ones = 0
state zeros = 0
ones <- ones + x
zeros <- zeros + (1 - x)
let d = ones - zeros
probe diff = d
output relu(d + 1) - relu(d) + 0 * x * x
""")
    new, _ = optimize(g)
    assert len(new) < len(g) and not ops(new, ir.Multi)
    assert_same(g, new, np.random.default_rng(2).integers(0, 2, (3, 8, 1)).astype(float))


# ---------------------------------------------------------------- properties on random graphs


@SETTINGS
@pytest.mark.parametrize("name", [*PASSES, "pipeline"])
@given(data=st.data())
def test_random_graphs_keep_their_semantics(name, data):
    g = data.draw(graphs(kinds=STATEFUL) if name == "merge_states" else graphs())
    x = data.draw(inputs(g))
    new = optimize(g)[0] if name == "pipeline" else PASSES[name](g)[0]
    new.validate()
    assert sum(isinstance(n.op, ir.Input) for n in new.nodes) == 1
    assert [p for p, _ in new.probes] == [p for p, _ in g.probes]
    assert_same(g, new, x)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(data=st.data())
def test_random_float_graphs_keep_their_semantics(data):
    g = data.draw(graphs(floats=True))
    x = data.draw(inputs(g))
    assert_same(g, optimize(g)[0], x.astype(float))


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.sampled_from([KINDS, STATEFUL]).flatmap(lambda kinds: graphs(kinds=kinds)))
def test_pipeline_is_deterministic_and_idempotent(g):
    once, reports = optimize(g)
    assert dump(optimize(g)[0]) == dump(once)
    twice, _ = optimize(once)
    assert size(twice) <= size(once)
    # lifting a periodic state to a one-hot adds its read-out (one Linear) where nothing absorbs it
    lifted = sum(r.rewrites.get("lift_periodic_state", 0) for r in reports)
    assert size(once) <= size(optimize(g, upto="dce")[0]) + lifted


def test_merging_states_keeps_their_names_without_counting_as_growth():
    A = Coeffs([[-2, -2], [-2, -2]])
    x = ir.Node(0, ir.Input(1), (), 1, None, "x")
    a = ir.Node(1, ir.LinState(A, None, Coeffs([0, 0]), Coeffs([1, 2])), (), 2, None, "a")
    b = ir.Node(2, ir.LinState(A, None, Coeffs([0, 0]), Coeffs([3, 4])), (), 2, None, "b")
    out = ir.Node(3, ir.Linear((Coeffs([[1, 1]]), Coeffs([[1, -1]])), Coeffs([0])), (1, 2), 1, None, None)
    g = ir.Graph((x, a, b, out), 0, 3, (), "two_states", {})
    new, _ = optimize(g)
    assert sum(isinstance(n.op, ir.LinState) for n in new.nodes) == 1
    assert {"a", "b"} <= {n.label for n in new.nodes}  # the parts stay visible as named slices
    assert size(new) < size(g)
    assert_same(g, new, np.zeros((2, 5, 1)))


def size(g: ir.Graph) -> int:
    """Nodes, less the named views that pruning keeps only to show a variable (e.g. a merged state's parts)."""
    used = {a for n in g.nodes for a in n.args} | {g.input, g.output, *(i for _, i in g.probes)}
    return sum(n.id in used or not isinstance(n.op, VIEWS) for n in g.nodes)


# ---------------------------------------------------------------- shipped programs


@pytest.mark.parametrize("path", PROGRAMS, ids=[p.name for p in PROGRAMS])
def test_shipped_programs_are_unchanged_by_the_optimiser(path):
    try:
        prog = lsrl.load_program(str(path))
    except LsrlError as exc:  # another engineer's program mid-edit: not this file's business
        pytest.skip(f"{path.name} does not compile: {exc}")
    new, _ = optimize(prog.graph)
    assert len(new) <= len(prog.graph)
    x = prog.input.sample(np.random.default_rng(0), 3, 24)
    assert_same(prog.graph, new, x)
    assert dump(optimize(prog.graph)[0]) == dump(new)


def test_no_programs_is_not_an_error():
    if not PROGRAMS:
        pytest.skip("no programs/*.lsrl yet")
