"""Readable text dump of an IR graph, one node per line with its source location."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs

MAX_INLINE = 64  # matrices with more entries are summarised


def _c(c: Coeffs | None) -> str:
    if c is None:
        return "none"
    if c.data.size > MAX_INLINE:
        if c.is_identity:
            return f"I{c.shape[0]}"
        nz = sum(1 for v in c.data.reshape(-1) if v != 0)
        return f"<{'x'.join(map(str, c.shape))}, {nz} nonzero>"
    return c.to_text()


def format_op(node: ir.Node) -> str:
    op, args = node.op, ", ".join(f"%{a}" for a in node.args)
    if isinstance(op, ir.Input):
        return "input"
    if isinstance(op, ir.Linear):
        terms = " + ".join(f"{_c(m)} @ %{a}" for m, a in zip(op.mats, node.args, strict=True))
        bias = "" if op.bias.is_zero and terms else _c(op.bias)
        return "linear " + " + ".join(t for t in (terms, bias) if t)
    if isinstance(op, ir.Slice):
        return f"slice %{node.args[0]}{list(op.indices)}"
    if isinstance(op, ir.LinState):
        drive = f" B={_c(op.B)} @ %{node.args[0]}" if node.args else ""
        return f"linstate A={_c(op.A)}{drive} bias={_c(op.bias)} init={_c(op.init)}"
    return f"{op.mnemonic} {args}"


def dump(graph: ir.Graph, locations: bool = True) -> str:
    lines = [f"graph {graph.name}: input %{graph.input}, output %{graph.output}"]
    for n in graph.nodes:
        label = f" {n.label}" if n.label else ""
        where = f"  # {n.span}" if locations and n.span else ""
        lines.append(f"  %{n.id}{label} : {n.dim} = {format_op(n)}{where}")
    lines.append(f"  output %{graph.output}")
    lines += [f"  probe {name} = %{i}" for name, i in graph.probes]
    return "\n".join(lines)
