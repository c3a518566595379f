"""Merging of parallel states: LinStates computed and last read at the same layers become one state."""

# Rule: states are grouped by (position, last read): the position the lowering's ASAP schedule gives
# them (3*layer + phase, lsrl/lowering/schedule.py) and the latest position that reads them, both
# computed here from the graph. Every op is placed strictly after (LinState) or not before (views) its
# operands, so a state that feeds another state's operand sits at a strictly later position: a group
# never holds one state upstream of another, so merging cannot create a cycle, and the merged state
# (placed at the max of equal positions) moves nothing in the schedule. Equal last reads keep the
# lowering's liveness unchanged: merging a short-lived state into a long-lived one would carry its
# units through every later layer (on tok2tok, grouping by position alone grew the lrnn weights by 22%).
# A group is merged only when that shrinks the graph (see _pays).

from __future__ import annotations

import heapq

from lsrl.ir import graph as ir
from lsrl.ir.passes import Pass
from lsrl.passes import matrices as mx
from lsrl.passes.rewrite import VIEWS, GraphBuilder

INPUT_POS = -1
ABSORB = (ir.Linear, ir.LinState, ir.Slice)  # readers that fuse_linear folds a Slice into


def _ceil3(x: int) -> int:
    return -((-x) // 3)


def positions(graph: ir.Graph) -> dict[int, int]:
    """ASAP position of every node (views sit where their latest operand does)."""
    pos: dict[int, int] = {}
    for n in graph.nodes:
        p = max((pos[a] for a in n.args), default=INPUT_POS)
        if isinstance(n.op, ir.LinState):
            p = 3 * max(0, _ceil3(p + 1))
        elif isinstance(n.op, ir.ReLU):
            p = 3 * max(0, _ceil3(p)) + 1
        elif isinstance(n.op, ir.Multi):
            p = 3 * max(0, _ceil3(p - 1)) + 2
        pos[n.id] = p
    return pos


def last_reads(graph: ir.Graph, pos: dict[int, int]) -> dict[int, float]:
    """The latest position whose materialised node reads each value (through views); roots: infinity."""
    last: dict[int, float] = {n.id: float("-inf") for n in graph.nodes}
    for r in graph.roots():
        last[r] = float("inf")
    for n in reversed(graph.nodes):  # users before operands
        at = last[n.id] if isinstance(n.op, VIEWS) else pos[n.id]
        for a in n.args:
            last[a] = max(last[a], at)
    return last


def _groups(graph: ir.Graph) -> list[list[int]]:
    groups: dict[tuple[int, float], list[int]] = {}
    pos = positions(graph)
    last = last_reads(graph, pos)
    for n in graph.nodes:
        if isinstance(n.op, ir.LinState):
            groups.setdefault((pos[n.id], last[n.id]), []).append(n.id)
    return [g for g in groups.values() if _pays(graph, g)]


def _pays(graph: ir.Graph, group: list[int]) -> bool:
    """Whether merging shrinks the graph once fuse_linear has run.

    The merge adds the merged state (and a Concat when the states read different operands) and a Slice
    per state; a Slice read only by Linears, states or Slices fuses into them, the others stay."""
    roots = set(graph.roots())
    absorbed = sum(s not in roots and all(isinstance(graph[u].op, ABSORB) for u in graph.users[s])
                   for s in group)
    concat = len({graph[s].args for s in group if graph[s].args}) > 1
    return absorbed > 1 + concat


def _order(graph: ir.Graph, unit: dict[int, int]) -> list[int]:
    """Topological order of units (a group of states is one unit), earliest original node first."""
    deps: dict[int, set[int]] = {}
    for n in graph.nodes:
        deps.setdefault(unit[n.id], set()).update(unit[a] for a in n.args)
    for u, d in deps.items():
        d.discard(u)
    users: dict[int, list[int]] = {u: [] for u in deps}
    for u, d in deps.items():
        for v in d:
            users[v].append(u)
    waiting = {u: len(d) for u, d in deps.items()}
    ready = [u for u, k in waiting.items() if k == 0]
    heapq.heapify(ready)
    out = []
    while ready:
        u = heapq.heappop(ready)
        out.append(u)
        for v in users[u]:
            waiting[v] -= 1
            if not waiting[v]:
                heapq.heappush(ready, v)
    if len(out) != len(deps):
        raise ir.IRError("merging states would create a cycle")
    return out


def _merged(states: list[tuple[ir.LinState, int | None]], operands: list[int],
            dims: dict[int, int]) -> ir.LinState:
    """Block-diagonal A; each state's B rows sit under its operand's column block (zeros elsewhere)."""
    ops = [op for op, _ in states]
    A = mx.block_diag([op.A for op in ops])
    bias, init = mx.concat([op.bias for op in ops]), mx.concat([op.init for op in ops])
    if not operands:
        return ir.LinState(A, None, bias, init)
    blocks = []
    for op, arg in states:
        d = op.A.shape[0]
        blocks.append(mx.hstack([op.B if arg == o else mx.zeros(d, dims[o]) for o in operands], d))
    return ir.LinState(A, mx.concat(blocks), bias, init)


def _joint_label(states: list[ir.Node]) -> str | None:
    """`a+_+b` for merged states a, (unnamed), b: never a member's own name, which its Slice keeps."""
    if not any(s.label for s in states):
        return None
    return "+".join(s.label or "_" for s in states)


def merge_states(graph: ir.Graph) -> tuple[ir.Graph, dict[str, int]]:
    groups = _groups(graph)
    if not groups:
        return graph, {"merged_states": 0}
    unit = {n.id: n.id for n in graph.nodes}
    for g in groups:
        for s in g:
            unit[s] = g[0]
    members = {g[0]: g for g in groups}
    b, remap = GraphBuilder(), {}
    for u in _order(graph, unit):
        if u not in members:
            n = graph[u]
            remap[u] = b.keep(n, tuple(remap[a] for a in n.args))
            continue
        states = [graph[s] for s in members[u]]
        operands = list(dict.fromkeys(remap[s.args[0]] for s in states if s.args))
        dims = {o: b[o].dim for o in operands}
        op = _merged([(s.op, remap[s.args[0]] if s.args else None) for s in states], operands, dims)
        if len(operands) > 1:  # states reading different values read them side by side
            operands = [b.add(ir.Concat(), operands)]
        merged = b.add(op, operands, states[0].span, _joint_label(states))
        off = 0
        for s in states:  # each old state is its rows of the merged one
            remap[s.id] = b.add(ir.Slice(tuple(range(off, off + s.dim))), (merged,), s.span, s.label)
            off += s.dim
    out = b.build(remap[graph.input], remap[graph.output], [(p, remap[i]) for p, i in graph.probes], graph)
    return out, {"merged_states": sum(len(g) for g in groups), "groups": len(groups)}


PASS = Pass("merge_states", merge_states,
            "merge LinStates computed and last read at the same positions into one block-diagonal state")
