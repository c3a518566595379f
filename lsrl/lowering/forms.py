"""Linear forms: every IR value written as sum_m M_m @ value(m) + bias over materialized nodes."""

from __future__ import annotations

from dataclasses import dataclass

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs

# Ops whose values must exist in some layer's units; Linear/Concat/Slice are views folded into readers.
MATERIAL = (ir.Input, ir.LinState, ir.ReLU, ir.Multi)


@dataclass(frozen=True)
class Form:
    terms: tuple[tuple[int, Coeffs], ...]  # (materialized node id, matrix dim x node.dim), sorted by id
    bias: Coeffs

    @property
    def deps(self) -> tuple[int, ...]:
        return tuple(m for m, _ in self.terms)

    def scaled(self, M: Coeffs) -> Form:
        return Form(tuple((m, M @ c) for m, c in self.terms), M @ self.bias)


def _combine(parts: list[Form], bias: Coeffs) -> Form:
    acc: dict[int, Coeffs] = {}
    for f in parts:
        for m, c in f.terms:
            acc[m] = acc[m] + c if m in acc else c
        bias = bias + f.bias
    return Form(tuple(sorted((m, c) for m, c in acc.items() if not c.is_zero)), bias)


def _read(out: dict[int, Form], graph: ir.Graph, a: int, M: Coeffs) -> Form:
    """M @ value(a). Optimised Linears read materialized nodes only, whose form is the identity: M itself."""
    if isinstance(graph[a].op, MATERIAL):
        return Form(((a, M),), Coeffs.zeros(M.shape[0]))
    return out[a].scaled(M)


def forms(graph: ir.Graph) -> dict[int, Form]:
    """The linear form of every node (materialized nodes are their own identity form)."""
    out: dict[int, Form] = {}
    for n in graph.nodes:
        op = n.op
        if isinstance(op, MATERIAL):
            out[n.id] = Form(((n.id, Coeffs.eye(n.dim)),), Coeffs.zeros(n.dim))
        elif isinstance(op, ir.Linear):
            out[n.id] = _combine([_read(out, graph, a, m) for m, a in zip(op.mats, n.args, strict=True)], op.bias)
        elif isinstance(op, ir.Concat):
            parts, off = [], 0
            for a in n.args:
                k = graph[a].dim
                parts.append(_read(out, graph, a, Coeffs.ones_at((n.dim, k), range(off, off + k), range(k))))
                off += k
            out[n.id] = _combine(parts, Coeffs.zeros(n.dim))
        elif isinstance(op, ir.Slice):
            sel = Coeffs.ones_at((n.dim, graph[n.args[0]].dim), range(n.dim), list(op.indices))
            out[n.id] = _read(out, graph, n.args[0], sel)
        else:
            raise TypeError(f"no linear form for {op!r}")
    return out
