"""Mutable graph under construction: adds nodes, splits state updates into A s + rest, freezes to IR."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from lsrl.diagnostics import LsrlError, Note, Span, error
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs


@dataclass(frozen=True)
class Prev(ir.Op):
    """Placeholder for s_{t-1} inside the update of state `state`; never reaches the IR."""

    state: int
    dim: int
    mnemonic = "prev"

    def out_dim(self, arg_dims):
        return self.dim


@dataclass(frozen=True)
class PendingState(ir.Op):
    """A declared state whose update has not been elaborated yet."""

    dim: int
    mnemonic = "state"

    def out_dim(self, arg_dims):
        return self.dim


@dataclass
class BNode:
    op: ir.Op
    args: list[int]
    dim: int
    span: Span | None
    label: str | None = None


@dataclass
class StateInfo:
    name: str
    node: int
    init: Coeffs
    decl_span: Span | None
    update_span: Span | None = None


@dataclass
class Builder:
    nodes: dict[int, BNode] = field(default_factory=dict)
    states: list[StateInfo] = field(default_factory=list)

    def add(self, op: ir.Op, args: list[int], span: Span | None) -> int:
        dim = op.out_dim(tuple(self.nodes[a].dim for a in args))
        nid = len(self.nodes)
        self.nodes[nid] = BNode(op, list(args), dim, span)
        return nid

    def dim(self, nid: int) -> int:
        return self.nodes[nid].dim

    def set_label(self, nid: int, label: str) -> None:
        node = self.nodes[nid]
        if node.label is None and not isinstance(node.op, Prev):
            node.label = label

    # ------------------------------------------------------------ states

    def declare_state(self, name: str, init: Coeffs, span: Span | None) -> StateInfo:
        nid = self.add(PendingState(init.shape[0]), [], span)
        self.nodes[nid].label = name
        info = StateInfo(name, nid, init, span)
        self.states.append(info)
        return info

    def prev(self, info: StateInfo, span: Span | None) -> int:
        return self.add(Prev(info.node, self.dim(info.node)), [], span)

    def set_update(self, info: StateInfo, root: int, prev: int, name: str, span: Span) -> None:
        """Make `info` the state s_t = A s_{t-1} + rest, where root = A prev + rest."""
        d = self.dim(info.node)
        A, terms, bias = _Splitter(self, prev, name).split(root)
        A = A if A is not None else Coeffs.zeros(d, d)
        node = self.nodes[info.node]
        if not terms:
            node.op, node.args = ir.LinState(A, None, bias, info.init), []
        else:
            if len(terms) == 1 and terms[0][0].is_identity:
                src = terms[0][1]
            else:
                src = self.add(ir.Linear(tuple(m for m, _ in terms), Coeffs.zeros(d)),
                               [a for _, a in terms], span)
            node.op, node.args = ir.LinState(A, Coeffs.eye(d), bias, info.init), [src]
        info.update_span = span

    # ------------------------------------------------------------ freeze

    def freeze(self, input_node: int, output: int, probes: list[tuple[str, int]], name: str) -> ir.Graph:
        for info in self.states:
            if isinstance(self.nodes[info.node].op, PendingState):
                raise error("E0305", f"state `{info.name}` is declared but never updated", info.decl_span,
                            f"add an update such as `{info.name} <- {info.name}` (constant) or "
                            f"`{info.name} <- {info.name} + x`")
        order = self._topo_order([output, *(i for _, i in probes)], input_node)
        renum = {old: new for new, old in enumerate(order)}
        nodes = tuple(
            ir.Node(renum[o], self.nodes[o].op, tuple(renum[a] for a in self.nodes[o].args), self.nodes[o].dim,
                    self.nodes[o].span, self.nodes[o].label)
            for o in order)
        return ir.Graph(nodes, renum[input_node], renum[output], tuple((n, renum[i]) for n, i in probes), name)

    def _topo_order(self, roots: list[int], input_node: int) -> list[int]:
        """DFS post-order from the roots (deterministic); a back edge is a cycle between values."""
        order: list[int] = [input_node]
        color: dict[int, int] = {input_node: 2}  # 1 = on stack, 2 = done
        for root in roots:
            if color.get(root) == 2:
                continue
            stack: list[tuple[int, int]] = [(root, 0)]
            color[root] = 1
            while stack:
                nid, i = stack[-1]
                args = self.nodes[nid].args
                if i < len(args):
                    stack[-1] = (nid, i + 1)
                    a = args[i]
                    if color.get(a) == 1:
                        raise self._cycle_error([s for s, _ in stack], a)
                    if a not in color:
                        color[a] = 1
                        stack.append((a, 0))
                else:
                    color[nid] = 2
                    order.append(nid)
                    stack.pop()
        return order

    def _cycle_error(self, path: list[int], back_to: int) -> LsrlError:
        cycle = path[path.index(back_to):]
        names = [self.nodes[n].label for n in cycle if self.nodes[n].label]
        names = list(dict.fromkeys(names)) or ["(unnamed)"]
        chain = " -> ".join(f"`{n}`" for n in [*reversed(names), names[-1]])
        states = [s for s in self.states if s.node in cycle]
        span = states[0].update_span if states else self.nodes[cycle[0]].span
        notes = tuple(Note(f"`{s.name}` is updated here", s.update_span) for s in states[1:])
        return error("E0306", f"cycle between values: {chain}; a value cannot depend on itself within a step",
                     span, "a state's own name in its update is its previous value; every other reader sees "
                     "the new value, so keep an older copy in another state to break the cycle", notes)


class _Splitter:
    """Writes the value of `root` as A @ prev + sum_j M_j @ node_j + bias (linear in prev) or fails."""

    def __init__(self, b: Builder, prev: int, name: str):
        self.b, self.prev, self.name = b, prev, name
        self.d = b.dim(prev)
        self._deps: dict[int, bool] = {}

    def depends(self, nid: int) -> bool:
        """Whether node `nid` reads prev; iterative DFS so deep graphs do not hit the recursion limit."""
        if nid in self._deps:
            return self._deps[nid]
        stack, on_path = [(nid, 0)], {nid}
        while stack:
            n, i = stack[-1]
            args = self.b.nodes[n].args
            if n != self.prev and i < len(args):
                stack[-1] = (n, i + 1)
                a = args[i]
                if a not in self._deps and a not in on_path:  # a node on the path lies on a cycle
                    stack.append((a, 0))
                    on_path.add(a)
                continue
            self._deps[n] = n == self.prev or any(self._deps.get(a, False) for a in args)
            stack.pop()
            on_path.discard(n)
        return self._deps[nid]

    def split(self, root: int):
        """Returns (A or None, [(M_j, node_j)], bias) for the value of node `root`."""
        n = self.b.nodes[root]
        if not self.depends(root):
            return None, [(Coeffs.eye(n.dim), root)], Coeffs.zeros(n.dim)
        if root == self.prev:
            return Coeffs.eye(self.d), [], Coeffs.zeros(self.d)
        op = n.op
        if isinstance(op, ir.Linear):
            parts = [self._scaled(m, self.split(a)) for m, a in zip(op.mats, n.args, strict=True)]
            return self._sum(parts, op.bias)
        if isinstance(op, ir.Concat):
            rows, parts, off = n.dim, [], 0
            for a in n.args:
                k = self.b.dim(a)
                place = np.zeros((rows, k), dtype=np.int64)
                place[off:off + k] = np.eye(k, dtype=np.int64)
                parts.append(self._scaled(Coeffs(place), self.split(a)))
                off += k
            return self._sum(parts, Coeffs.zeros(rows))
        if isinstance(op, ir.Slice):
            src = self.b.dim(n.args[0])
            sel = np.zeros((len(op.indices), src), dtype=np.int64)
            sel[np.arange(len(op.indices)), list(op.indices)] = 1
            return self._sum([self._scaled(Coeffs(sel), self.split(n.args[0]))], Coeffs.zeros(n.dim))
        what = {ir.ReLU: "inside relu(...)", ir.Multi: "in a product of two per-step values (u*v)",
                ir.LinState: "in the update of another state"}.get(type(op), "in a non-linear operation")
        hint = ("a state update must be linear in the state: A @ s + (anything not involving s); "
                "compute the non-linear part from the new value in a `let` instead")
        at = f" at {n.span.line}:{n.span.col}" if n.span else ""
        raise error("E0301", f"`{self.name}` appears {what} in its own update{at}; a state update must be "
                    "linear in the state", n.span, hint)

    @staticmethod
    def _scaled(m: Coeffs, part):
        A, terms, bias = part
        return (m @ A if A is not None else None), [(m @ t, a) for t, a in terms], m @ bias

    def _sum(self, parts, bias: Coeffs):
        A = None
        merged: dict[int, Coeffs] = {}
        for pa, pt, pb in parts:
            if pa is not None:
                A = pa if A is None else A + pa
            for m, a in pt:
                merged[a] = merged[a] + m if a in merged else m
            bias = bias + pb
        return A, [(m, a) for a, m in merged.items() if not m.is_zero], bias
