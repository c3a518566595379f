"""Shared rewriting machinery: a graph builder with fresh topological ids and a driver for named rules."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, replace

from lsrl.diagnostics import Span, error
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs

Form = tuple[ir.Op, tuple[int, ...]]  # an op over operand ids of the graph being built
Result = Form | int | None  # what a rule returns: a new form, an existing value (alias), or no match
VIEWS = (ir.Linear, ir.Slice, ir.Concat)  # ops that are affine maps of their operands


class GraphBuilder:
    """Appends nodes with fresh ids 0, 1, ... (operands first); with `share`, equal (op, args) share one."""

    def __init__(self, share: bool = False):
        self.nodes: list[ir.Node] = []
        self.share = share
        self.shared = 0  # how many additions hash-consing answered with an existing node
        self._table: dict[Form, int] = {}

    def add(self, op: ir.Op, args: Iterable[int] = (), span: Span | None = None,
            label: str | None = None) -> int:
        args = tuple(args)
        hit = self._shared(op, args, span, label)
        if hit is not None:
            return hit
        dim = op.out_dim(tuple(self.nodes[a].dim for a in args))
        return self._append(ir.Node(len(self.nodes), op, args, dim, span, label))

    def keep(self, n: ir.Node, args: tuple[int, ...]) -> int:
        """`n` unchanged but for its operands' new ids, which stand for values of the same dims: `n` itself
        when its id and operands come out the same (a sweep that changes little allocates little), else a
        copy; its dims were checked when it was made."""
        hit = self._shared(n.op, args, n.span, n.label)
        if hit is not None:
            return hit
        nid = len(self.nodes)
        return self._append(n if n.id == nid and n.args == args else ir.Node(nid, n.op, args, n.dim, n.span, n.label))

    def _shared(self, op: ir.Op, args: tuple[int, ...], span: Span | None, label: str | None) -> int | None:
        if self.share and (op, args) in self._table:
            self.shared += 1
            return self.adopt(self._table[(op, args)], span, label)
        return None

    def _append(self, node: ir.Node) -> int:
        self.nodes.append(node)
        if self.share:
            self._table.setdefault((node.op, node.args), node.id)
        return node.id

    def adopt(self, nid: int, span: Span | None, label: str | None) -> int:
        """`nid` also stands for a value that had this span/label: keep its own, fill in what it lacks."""
        n = self.nodes[nid]
        if (n.span is None and span is not None) or (n.label is None and label is not None):
            self.nodes[nid] = replace(n, span=n.span or span, label=n.label or label)
        return nid

    def __getitem__(self, nid: int) -> ir.Node:
        return self.nodes[nid]

    def build(self, input: int, output: int, probes: Sequence[tuple[str, int]], like: ir.Graph,
              prune: bool = True) -> ir.Graph:
        """The finished graph; `prune` drops nodes that neither a root nor the input needs, renumbering."""
        keep = live(self.nodes, (input, output, *(i for _, i in probes))) if prune else set(range(len(self.nodes)))
        if len(keep) == len(self.nodes):  # nothing pruned: ids stay as they are
            new_id = {k: k for k in range(len(self.nodes))}
            nodes = tuple(self.nodes)
        else:
            new_id = {old: k for k, old in enumerate(sorted(keep))}
            nodes = tuple(ir.Node(new_id[n.id], n.op, tuple(new_id[a] for a in n.args), n.dim, n.span, n.label)
                          for n in self.nodes if n.id in keep)
        # no re-validation: add() checked each new node's dims, a node no rule touched keeps those of the
        # (checked) graph it came from, and the order is kept
        return ir.Graph(nodes, new_id[input], new_id[output], tuple((p, new_id[i]) for p, i in probes),
                        like.name, dict(like.meta), check=False)


def live(nodes: Sequence[ir.Node], roots: Iterable[int]) -> set[int]:
    """Ids of the nodes (in topological order, ids = positions) that the roots need, plus named views of
    those: a named affine view of live values costs no units, and keeps the program's variable names (e.g.
    a state merged into a block-diagonal one) visible to IR dumps and checkpoint manifests."""
    keep = set(roots)
    for n in reversed(nodes):
        if n.id in keep:
            keep.update(n.args)
    for n in nodes:
        if n.id not in keep and n.label and isinstance(n.op, VIEWS) and keep.issuperset(n.args):
            keep.add(n.id)
    return keep


@dataclass(frozen=True)
class Rule:
    """A named local rewrite: `apply(rw, op, args)` sees a node's op over already-rewritten operands.

    `on`: the op types it can match; the rewriter offers it only nodes of those types (a sweep tries
    a few rules per node instead of all of them)."""

    name: str
    apply: Callable[[Rewriter, ir.Op, tuple[int, ...]], Result]
    on: type[ir.Op] | tuple[type[ir.Op], ...] = ir.Op


class Rewriter:
    """Rebuilds a graph in topological order, applying rules to each node until none matches."""

    MAX_STEPS = 64  # rules on one node; every rule simplifies, so this only guards against a bad rule

    def __init__(self, graph: ir.Graph, rules: Sequence[Rule], share: bool = False):
        self.old = graph
        self.rules = rules
        self.b = GraphBuilder(share)
        self.remap: dict[int, int] = {}
        self.counts = {r.name: 0 for r in rules}
        self._rules_for: dict[type, list[Rule]] = {}  # op type -> the rules that can match it
        self._uses: dict[int, int] = {}  # new id -> uses (users + roots) in the old graph of what maps to it
        self._span: Span | None = None

    # what rules may ask about (new) ids
    def op(self, nid: int) -> ir.Op:
        return self.b[nid].op

    def args(self, nid: int) -> tuple[int, ...]:
        return self.b[nid].args

    def dim(self, nid: int) -> int:
        return self.b[nid].dim

    def const(self, nid: int) -> Coeffs | None:
        """The value of a constant (a Linear without operands), else None."""
        op = self.op(nid)
        return op.bias if isinstance(op, ir.Linear) and not op.mats else None

    def single_use(self, nid: int) -> bool:
        """Whether the value had exactly one use in the input graph (so a rule consuming it frees it)."""
        return self._uses.get(nid, 0) == 1

    def add(self, op: ir.Op, args: Iterable[int]) -> int:
        """An auxiliary node a rule needs (unlabelled, at the current node's span)."""
        return self.b.add(op, args, self._span)

    # the driver
    def run(self, prune: bool = True) -> tuple[ir.Graph, dict[str, int]]:
        g = self.old
        uses = {n.id: len(g.users[n.id]) for n in g.nodes}
        for r in g.roots():
            uses[r] += 1
        for n in g.nodes:
            self._span = n.span
            try:
                nid = self._rewrite(n)
            except OverflowError:  # an inexact product rounding to inf (Coeffs)
                nid = None
            if nid is None or not all(c.finite for c in ir.coeffs_of(self.b[nid].op)):
                raise error("E0709", "optimisation fused coefficients into one beyond float64's range (magnitude "
                            "1.8e308 or more)", n.span, "rescale the constants, or compile with --no-opt")
            self.remap[n.id] = nid
            self._uses[nid] = self._uses.get(nid, 0) + uses[n.id]
        counts = dict(self.counts)
        if self.b.share:
            counts["shared"] = self.b.shared
        m = self.remap
        out = self.b.build(m[g.input], m[g.output], [(p, m[i]) for p, i in g.probes], g, prune)
        return out, counts

    def _rewrite(self, n: ir.Node) -> int:
        op, args = n.op, tuple(self.remap[a] for a in n.args)
        if isinstance(op, ir.Input):
            return self.b.keep(n, args)
        fired = False
        for _ in range(self.MAX_STEPS):
            res = self._step(op, args)
            if res is None:
                break
            if isinstance(res, int):  # the node is an existing value: it lends that value its name
                return self.b.adopt(res, n.span, n.label)
            op, args = res
            fired = True
        else:
            raise ir.IRError(f"rules did not settle on %{n.id}")
        if fired:  # a rule's output gets its dims checked
            return self.b.add(op, args, n.span, n.label)
        return self.b.keep(n, args)  # the same op over operands of the same dims (rewrites keep dims)

    def _step(self, op: ir.Op, args: tuple[int, ...]) -> Result:
        rules = self._rules_for.get(type(op))
        if rules is None:
            rules = self._rules_for[type(op)] = [r for r in self.rules if isinstance(op, r.on)]
        for rule in rules:
            res = rule.apply(self, op, args)
            if res is not None:
                self.counts[rule.name] += 1
                return res
        return None


def rewrite(graph: ir.Graph, rules: Sequence[Rule], share: bool = False,
            prune: bool = True) -> tuple[ir.Graph, dict[str, int]]:
    """Apply `rules` bottom-up to every node (hash-consing with `share`), then drop dead nodes."""
    return Rewriter(graph, rules, share).run(prune)


def terms(op: ir.Linear, args: tuple[int, ...]) -> list[tuple[Coeffs, int]]:
    return list(zip(op.mats, args, strict=True))


def linear(ts: Sequence[tuple[Coeffs, int]], bias: Coeffs) -> Form:
    """A Linear form from (matrix, operand) terms."""
    return ir.Linear(tuple(m for m, _ in ts), bias), tuple(a for _, a in ts)
