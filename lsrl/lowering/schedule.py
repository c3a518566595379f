"""ASAP placement of materialized values into (layer, phase) positions, and liveness-based layouts."""

from __future__ import annotations

from dataclasses import dataclass

from lsrl.ir import graph as ir
from lsrl.lowering.forms import Form
from lsrl.lowering.stack import Layout, Segment
from lsrl.lowering.template import INPUT_POS, STATE_MLP_GATE, Template


def operand_forms(graph: ir.Graph, fs: dict[int, Form], nid: int) -> list[Form]:
    """The linear forms a materialized node reads (its operands)."""
    n = graph[nid]
    return [fs[a] for a in n.args] if not isinstance(n.op, ir.Input) else []


def place(graph: ir.Graph, fs: dict[int, Form], nid: int, avail: dict[int, int], template: Template) -> int:
    """Earliest position where node `nid` can be computed, given where its operands become available: the
    first phase of its kind after them (a stage reads the vector of the position before it)."""
    p = max((avail[d] for f in operand_forms(graph, fs, nid) for d in f.deps), default=INPUT_POS)
    return template.earliest(graph[nid].op, p)


@dataclass(frozen=True)
class Schedule:
    avail: dict[int, int]  # materialized node -> position where it is computed
    positions: tuple[int, ...]  # active positions (some node is computed there), ascending
    layouts: dict[int, Layout]  # position (INPUT_POS included) -> which values the vector there holds
    template: Template = STATE_MLP_GATE

    def reads(self, pos: int) -> int:
        """The position whose vector a stage at `pos` reads (the previous active one)."""
        return max(p for p in (INPUT_POS, *self.positions) if p < pos)

    @property
    def last(self) -> int:
        return self.positions[-1] if self.positions else INPUT_POS


def schedule(graph: ir.Graph, fs: dict[int, Form], template: Template = STATE_MLP_GATE) -> Schedule:
    needed = _needed(graph, fs)
    avail = {graph.input: INPUT_POS}
    for n in graph.nodes:  # topological order, so operands are placed first
        if n.id in needed and n.id != graph.input:
            avail[n.id] = place(graph, fs, n.id, avail, template)
    positions = tuple(sorted({p for p in avail.values() if p != INPUT_POS}))
    sched = Schedule(avail, positions, {}, template)
    need_until = dict.fromkeys(avail, INPUT_POS)  # last vector position each value must be present in
    for nid in avail:
        if nid == graph.input:
            continue
        read = sched.reads(avail[nid])
        for f in operand_forms(graph, fs, nid):
            for d in f.deps:
                need_until[d] = max(need_until[d], read)
    for r in graph.roots():
        for d in fs[r].deps:
            need_until[d] = max(need_until[d], sched.last)
    layouts, made = {}, {}  # made: a value carried at the same offset reuses its Segment
    for p in (INPUT_POS, *positions):
        live = sorted((avail[m], m) for m in avail if avail[m] <= p <= need_until[m])
        segs, off = [], 0
        for _, m in live:
            d = graph[m].dim
            seg = made.get((m, off))
            if seg is None:
                seg = made[(m, off)] = Segment(m, off, d)
            segs.append(seg)
            off += d
        layouts[p] = Layout(tuple(segs))
    return Schedule(avail, positions, layouts, template)


def _needed(graph: ir.Graph, fs: dict[int, Form]) -> set[int]:
    """Materialized nodes the roots depend on (through forms and operands)."""
    todo = [d for r in graph.roots() for d in fs[r].deps] + [graph.input]
    seen: set[int] = set()
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        for f in operand_forms(graph, fs, m):
            todo.extend(f.deps)
    return seen
