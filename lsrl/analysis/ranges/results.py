"""The results of the analysis: `NodeRange` per node and `Ranges` for a graph."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import MappingProxyType

from lsrl.analysis.ranges.arith import _fractions, to_fraction
from lsrl.analysis.ranges.limits import SET_LIMIT, VALUES_LIMIT
from lsrl.cached import cached
from lsrl.diagnostics import error
from lsrl.ir import graph as ir
from lsrl.program import Domain


@dataclass(frozen=True)
class NodeRange:
    """Per component of one node: bounds, integrality, booleanity, value set (None: not finite/small). Each is
    derived from the analysis's values when first asked for (most are never asked for in a compile)."""

    node: int
    vals: tuple = field(repr=False)  # the analysis's Val per component
    float_derived: tuple[bool, ...]

    @cached
    def lo(self) -> tuple:
        return tuple(to_fraction(v.lo) for v in self.vals)

    @cached
    def hi(self) -> tuple:
        return tuple(to_fraction(v.hi) for v in self.vals)

    @cached
    def integer(self) -> tuple[bool, ...]:
        return tuple(v.integer() for v in self.vals)

    @cached
    def boolean(self) -> tuple[bool, ...]:
        return tuple(v.boolean() for v in self.vals)

    @cached
    def values(self) -> tuple:
        return tuple(_fractions(v.values(VALUES_LIMIT)) for v in self.vals)

    @cached  # asked for by every stage that carries the value, in the error analysis and the backends
    def magnitudes(self) -> tuple[float, ...]:
        """Per component, the bound on |value| (inf where there is none)."""
        return tuple(max(abs(float(a)), abs(float(b))) for a, b in zip(self.lo, self.hi, strict=True))

    @cached  # backends ask per unit, once for every layer a value is carried through
    def bound(self) -> float:
        return max(self.magnitudes, default=0.0)

    @cached
    def nonnegative(self) -> bool:
        return all(lo >= 0 for lo in self.lo)


@dataclass(frozen=True)
class Ranges:
    """The result of `analyze`: a NodeRange per node id, plus how states were analysed."""

    graph: ir.Graph
    max_len: int
    domain: Domain | None
    nodes: MappingProxyType
    notes: MappingProxyType  # node id -> how its state was analysed (states only)
    orbits: MappingProxyType = field(repr=False)  # node id -> joint orbit points per block
    # (ReLU node id, component) -> (K, m): from step K + 1 on, the ReLU's argument is <= -m < 0 (it is read by the
    # drive of an accumulator that falls quiet after step K; lsrl.guarantee.propagate uses it: a float ReLU whose
    # argument errs by less than m is exactly 0 there)
    quiet: MappingProxyType = field(default_factory=lambda: MappingProxyType({}), repr=False)

    def __getitem__(self, node_id: int) -> NodeRange:
        return self.nodes[node_id]

    def bound(self, node_id: int) -> float:
        """max |value| over the node's components (inf when unbounded)."""
        return self.nodes[node_id].bound

    def is_boolean(self, node_id: int) -> bool:
        return all(self.nodes[node_id].boolean)

    def is_integer(self, node_id: int) -> bool:
        return all(self.nodes[node_id].integer)

    def nonnegative(self, node_id: int) -> bool:
        return self.nodes[node_id].nonnegative

    def values(self, node_id: int, comp: int = 0, limit: int = SET_LIMIT):
        """The exact value set of one component if it has at most `limit` values, else None."""
        return _fractions(self.nodes[node_id].vals[comp].values(limit))

    def require_bound(self, node_id: int, why: str) -> float:
        """The bound of a node, or an E0601 error naming it when it has none."""
        b = self.bound(node_id)
        if math.isfinite(b):
            return b
        node = self.graph[node_id]
        name = f"`{node.label}`" if node.label else f"this value (%{node_id})"
        dom = "no domain" if self.domain is None else f"domain {self.domain}"
        raise error(
            "E0601", f"{why} needs a bound on {name}, but range analysis cannot bound it (input has {dom}, "
            f"max length {self.max_len}): {self.describe(node_id)}", node.span,
            "declare a bounded input domain (`input x[d] in {0..9}` or `in [lo, hi]`), or pass a smaller "
            "--max-len if the value grows with the sequence length")

    def describe(self, node_id: int) -> str:
        node = self.graph[node_id]
        head = f"%{node_id}" + (f" `{node.label}`" if node.label else "") + (f" ({node.span})" if node.span else "")
        vals = self.nodes[node_id].vals
        nr = self.nodes[node_id]
        comps = []
        for i, v in enumerate(vals):
            tags = [t for t, ok in (("boolean", nr.boolean[i]), ("integer", nr.integer[i] and not nr.boolean[i]),
                                    ("float-derived", nr.float_derived[i])) if ok]
            comps.append(str(v) + (f" ({', '.join(tags)})" if tags else ""))
        body = comps[0] if len(comps) == 1 else "; ".join(f"[{i}] {c}" for i, c in enumerate(comps))
        note = self.notes.get(node_id)
        return f"{head}: {body}" + (f"; state: {note}" if note else "")

    def dump(self) -> str:
        return "\n".join(self.describe(n.id) for n in self.graph.nodes)
