"""Hypothesis strategies for random valid IR graphs and inputs (small dims, small rational coefficients).

`graphs()` draws DAGs of Linear/ReLU/Multi/Concat/Slice/LinState over one Input, with constants,
duplicated subexpressions, dead nodes, parallel states (same operand, or input-free), identities and
zero matrices, so that every optimiser rule has something to bite on. `inputs(graph)` draws a batch of
rational input sequences for it (exact-mode ready: an object array of Fractions).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
from hypothesis import strategies as st

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs

SMALL = [Fraction(n, d) for n, d in ((-2, 1), (-1, 1), (-1, 2), (0, 1), (1, 3), (1, 2), (1, 1), (2, 1))]
FLOATS = [0.1, -0.7, 2 ** 0.5]
KINDS = ["const", "linear", "linear", "relu", "relu", "multi", "concat", "slice", "state", "state", "dup",
         "parallel_state", "parallel_state", "identity", "read_states"]
# for tests of state rules: many parallel states, read together
STATEFUL = KINDS + ["state"] * 2 + ["parallel_state"] * 6 + ["read_states"] * 4
LABELS = [None, None, None, "a", "b", "c"]


def _scalar(draw, floats: bool):
    if floats and draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(FLOATS))
    return draw(st.sampled_from(SMALL))


def _coeffs(draw, shape: tuple[int, ...], floats: bool, zero_ok: bool = True) -> Coeffs:
    if zero_ok and draw(st.integers(0, 7)) == 0:
        return Coeffs.zeros(*shape)
    return Coeffs(np.array([_scalar(draw, floats) for _ in range(int(np.prod(shape)))],
                           dtype=object).reshape(shape))


class _Draft:
    """The graph being drawn: nodes by id, appended in topological order."""

    def __init__(self, in_dim: int):
        self.nodes: list[ir.Node] = [ir.Node(0, ir.Input(in_dim), (), in_dim, None, "x")]

    def add(self, op: ir.Op, args: tuple[int, ...], label: str | None = None) -> int:
        dim = op.out_dim(tuple(self.nodes[a].dim for a in args))
        self.nodes.append(ir.Node(len(self.nodes), op, args, dim, None, label))
        return len(self.nodes) - 1

    def pick(self, draw, dim: int | None = None) -> int:
        """An existing node (of that dim), often a recent one so that graphs grow deep."""
        ids = [n.id for n in self.nodes if dim is None or n.dim == dim]
        return draw(st.sampled_from(ids[-3:] if draw(st.booleans()) else ids))


def _state_op(draw, d: int, operand_dim: int | None, floats: bool) -> ir.LinState:
    # small entries keep exact values short over the few steps the tests run
    A = _coeffs(draw, (d, d), floats)
    B = None if operand_dim is None else _coeffs(draw, (d, operand_dim), floats)
    return ir.LinState(A, B, _coeffs(draw, (d,), floats), _coeffs(draw, (d,), floats))


def _draw_node(draw, g: _Draft, kind: str, max_dim: int, floats: bool) -> None:
    label = draw(st.sampled_from(LABELS))
    dim = draw(st.integers(1, max_dim))
    if kind == "const":
        g.add(ir.Linear((), _coeffs(draw, (dim,), floats)), (), label)
    elif kind == "linear":
        args = tuple(g.pick(draw) for _ in range(draw(st.integers(1, 3))))
        mats = tuple(_coeffs(draw, (dim, g.nodes[a].dim), floats) for a in args)
        g.add(ir.Linear(mats, _coeffs(draw, (dim,), floats)), args, label)
    elif kind == "identity":  # identity Linear, full Slice or one-operand Concat
        a = g.pick(draw)
        d = g.nodes[a].dim
        op = draw(st.sampled_from([ir.Linear((Coeffs.eye(d),), Coeffs.zeros(d)), ir.Slice(tuple(range(d))),
                                   ir.Concat()]))
        g.add(op, (a,), label)
    elif kind == "relu":
        g.add(ir.ReLU(), (g.pick(draw),), label)
    elif kind == "multi":
        a = g.pick(draw)
        d = g.nodes[a].dim
        b = g.pick(draw, d) if draw(st.booleans()) else g.add(ir.Linear((), _coeffs(draw, (d,), floats)), ())
        g.add(ir.Multi(), (a, b), label)
    elif kind == "concat":
        g.add(ir.Concat(), tuple(g.pick(draw) for _ in range(draw(st.integers(1, 3)))), label)
    elif kind == "slice":
        a = g.pick(draw)
        d = g.nodes[a].dim
        idx = tuple(draw(st.lists(st.integers(0, d - 1), min_size=1, max_size=4)))
        g.add(ir.Slice(idx), (a,), label)
    elif kind == "state":
        a = g.pick(draw) if draw(st.integers(0, 3)) else None
        op = _state_op(draw, dim, None if a is None else g.nodes[a].dim, floats)
        g.add(op, () if a is None else (a,), label)
    elif kind == "parallel_state":  # another state next to an existing one, same operand (or none)
        states = [n for n in g.nodes if isinstance(n.op, ir.LinState)]
        if states:
            s = draw(st.sampled_from(states))
            op = _state_op(draw, dim, g.nodes[s.args[0]].dim if s.args else None, floats)
            g.add(op, s.args, label)
    elif kind == "read_states":  # one Linear over several states, as `a + b` over parallel counters
        states = [n.id for n in g.nodes if isinstance(n.op, ir.LinState)]
        if len(states) > 1:
            args = tuple(draw(st.lists(st.sampled_from(states), min_size=2, max_size=4, unique=True)))
            mats = tuple(_coeffs(draw, (dim, g.nodes[a].dim), floats, zero_ok=False) for a in args)
            g.add(ir.Linear(mats, _coeffs(draw, (dim,), floats)), args, label)
    elif kind == "dup":  # the same op over the same operands again
        n = g.nodes[g.pick(draw)]
        if not isinstance(n.op, ir.Input):
            g.add(n.op, n.args, label)


@st.composite
def graphs(draw, max_nodes: int = 12, max_dim: int = 3, floats: bool = False,
           kinds: list[str] = KINDS) -> ir.Graph:
    """A random valid graph; with `floats`, some coefficients are irrational-looking floats; `kinds`
    weights what is drawn (a list of KINDS entries, repeats weigh more)."""
    g = _Draft(draw(st.integers(1, max_dim)))
    for _ in range(draw(st.integers(min(4, max_nodes), max_nodes))):
        _draw_node(draw, g, draw(st.sampled_from(kinds)), max_dim, floats)
    ids = [n.id for n in g.nodes]
    probes = tuple((f"p{k}", draw(st.sampled_from(ids))) for k in range(draw(st.integers(0, 2))))
    how = draw(st.sampled_from(["last", "any", "concat"]))  # a concat root keeps more of the graph alive
    if how == "concat":
        output = g.add(ir.Concat(), tuple(draw(st.lists(st.sampled_from(ids), min_size=2, max_size=4))))
    else:
        output = ids[-1] if how == "last" else draw(st.sampled_from(ids))
    return ir.Graph(tuple(g.nodes), 0, output, probes, "random")


def inputs(graph: ir.Graph, max_len: int = 4) -> st.SearchStrategy[np.ndarray]:
    """(batch 2, time 1..max_len, dim) inputs with small dyadic rational entries, as Fractions."""
    d = graph.input_dim
    vals = st.sampled_from([Fraction(k, 2) for k in range(-4, 5)])

    def to_array(flat: list[Fraction], t: int) -> np.ndarray:
        out = np.empty((2, t, d), dtype=object)
        out.reshape(-1)[:] = flat
        return out

    return st.integers(1, max_len).flatmap(
        lambda t: st.lists(vals, min_size=2 * t * d, max_size=2 * t * d).map(lambda f: to_array(f, t)))
