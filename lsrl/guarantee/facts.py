"""Facts for backends: what range analysis proved about each IR value, in the terms constructions ask for.

Backends pick their constants from these: the L of a ReLU if-else from `bound`, the small-signal scale of
a tanh unit from `bound` (states included: the analysis covers every step up to `max_len`), the sharpness of
a smooth ReLU surrogate from `relu_margin` (the smallest nonzero |argument|: outside it the surrogate
saturates and is float-exact), exact products from `values` (a factor with a few known values).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from fractions import Fraction

import numpy as np

from lsrl.analysis.ranges import DEFAULT_MAX_LEN, Ranges, analyze
from lsrl.analysis.ranges.arith import to_fraction
from lsrl.ir import graph as ir


class Facts:
    """Adapts `lsrl.analysis.ranges.Ranges` to what backends ask (every query is per node id)."""

    def __init__(self, ranges: Ranges):
        self.ranges = ranges
        self._margins: dict[int, float] = {}

    @property
    def max_len(self) -> int:
        return self.ranges.max_len

    def lo(self, node: int) -> list[float]:
        return [float(v) for v in self.ranges[node].lo]

    def hi(self, node: int) -> list[float]:
        return [float(v) for v in self.ranges[node].hi]

    def magnitudes(self, node: int) -> Sequence[float]:
        """Per component, a bound on |value| over every step up to max_len (inf where there is none)."""
        return self.ranges[node].magnitudes

    def integers(self, node: int) -> list[bool]:
        """Per component: provably an integer at every step."""
        return list(self.ranges[node].integer)

    def bound(self, node: int, why: str = "this backend's constants") -> float:
        """max |value| over the components; an E0601 error naming the value when there is none."""
        return self.ranges.require_bound(node, why)

    def is_boolean(self, node: int) -> bool:
        return self.ranges.is_boolean(node)

    def nonnegative(self, node: int) -> bool:
        return self.ranges.nonnegative(node)

    def values(self, node: int, comp: int = 0, limit: int = 16) -> tuple[Fraction, ...] | None:
        """The exact value set of one component when it has at most `limit` values, else None."""
        return self.ranges.values(node, comp, limit)

    def balls(self, node: int, comp: int = 0, limit: int = 256) -> tuple[tuple[Fraction, ...], Fraction] | None:
        """The values of one component as at most `limit` balls (centres, one radius; radius 0: exact values),
        or None where the analysis has no such set (a long lattice or an interval)."""
        v = self.ranges[node].vals[comp]
        if v.vals is not None and len(v.vals) <= limit:
            return tuple(to_fraction(c) for c in v.vals), to_fraction(v.rad)
        vals = self.values(node, comp, limit)
        return None if vals is None else (vals, Fraction(0))

    def lattice(self, node: int, comp: int = 0) -> tuple[Fraction, Fraction, Fraction, Fraction] | None:
        """(off, step, lo, hi): every value is off + k step within [lo, hi] (finite), or None."""
        v = self.ranges[node].vals[comp]
        lat = v.lattice()
        if lat is None or lat[1] == 0 or not all(math.isfinite(x) for x in (float(v.lo), float(v.hi))):
            return None
        return tuple(to_fraction(x) for x in (lat[0], lat[1], v.lo, v.hi))

    def quiet(self, node: int, comp: int) -> tuple[int, float] | None:
        """(K, m): from step K + 1 on this ReLU component's argument is <= -m < 0 (Ranges.quiet), or None."""
        q = self.ranges.quiet.get((node, comp))
        return None if q is None else (q[0], float(q[1]))

    def relu_margin(self, node: int) -> float:
        """For a ReLU node: the smallest nonzero |argument| over its components (0.0 when values may come
        arbitrarily close to the kink, e.g. an interval around 0)."""
        if node not in self._margins:
            arg = self.ranges.graph[node]
            if isinstance(arg.op, ir.ReLU):
                arg = self.ranges.graph[arg.args[0]]
            self._margins[node] = min((_margin(v) for v in self.ranges[arg.id].vals), default=math.inf)
        return self._margins[node]


class CarriedFacts(Facts):
    """Facts of a rewritten graph (legalisation) that equals the analysed one value for value up to max_len on
    every node it kept (`to_old`: new id -> old id). Those nodes answer from the old analysis, which saw the
    program before the rewrite (a cyclic one-hot as one state with a known orbit, not as separately decoded
    components whose sums intervals overestimate); the rewrite's own nodes answer from the new analysis."""

    def __init__(self, ranges: Ranges, old: Facts, to_old: dict[int, int]):
        super().__init__(ranges)
        self.old, self.to_old = old, to_old
        self.derived: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}  # new node -> (lo, hi, integer)
        for n in ranges.graph.nodes:  # the rewrite's Linears and delay lines, from their operands' facts
            if n.id not in to_old:
                self._derive(n)

    def _ask(self, name: str, node: int, *args):
        """A query answered by the old analysis for a kept node, else by the new one."""
        old = self.to_old.get(node)
        return getattr(self.old, name)(old, *args) if old is not None else getattr(Facts, name)(self, node, *args)

    def lo(self, node: int) -> list[float]:
        d = self.derived.get(node)
        return [float(v) for v in d[0]] if d is not None else self._ask("lo", node)

    def hi(self, node: int) -> list[float]:
        d = self.derived.get(node)
        return [float(v) for v in d[1]] if d is not None else self._ask("hi", node)

    def integers(self, node: int) -> list[bool]:
        d = self.derived.get(node)
        return [bool(v) for v in d[2]] if d is not None else self._ask("integers", node)

    def magnitudes(self, node: int) -> Sequence[float]:
        d = self.derived.get(node)
        if d is None:
            return self._ask("magnitudes", node)
        return [float(max(abs(a), abs(b))) for a, b in zip(d[0], d[1], strict=True)]

    def bound(self, node: int, why: str = "this backend's constants") -> float:
        return self._ask("bound", node, why)

    def is_boolean(self, node: int) -> bool:
        return self._ask("is_boolean", node)

    def nonnegative(self, node: int) -> bool:
        return self._ask("nonnegative", node)

    def values(self, node: int, comp: int = 0, limit: int = 16):
        return self._ask("values", node, comp, limit)

    def balls(self, node: int, comp: int = 0, limit: int = 256):
        return self._ask("balls", node, comp, limit)

    def lattice(self, node: int, comp: int = 0):
        return self._ask("lattice", node, comp)

    def quiet(self, node: int, comp: int) -> tuple[int, float] | None:
        return self._ask("quiet", node, comp)  # (a kept node equals the analysed one at every step up to max_len)

    def relu_margin(self, node: int) -> float:
        return self._ask("relu_margin", node)

    def _interval(self, node: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        if node in self.derived:
            return self.derived[node]
        return (np.array(self.lo(node)), np.array(self.hi(node)), np.array(self.integers(node), dtype=bool))

    def _derive(self, n: ir.Node) -> None:
        """Intervals of a Linear over its operands, and of a delay line (a nilpotent shift state with no bias
        or init: each component is some lag of its drive, or 0), intersected with the new analysis."""
        op = n.op
        if isinstance(op, ir.Linear):
            lo, hi, ints = _affine(op.mats, op.bias, [self._interval(a) for a in n.args])
        elif (isinstance(op, ir.LinState) and op.B is not None and op.bias.is_zero and op.init.is_zero
              and all(sorted(r) in ([0] * len(r), [0] * (len(r) - 1) + [1]) for r in op.A.f64.tolist())
              and not np.linalg.matrix_power(op.A.f64, n.dim).any()):
            lo, hi, ints = _affine((op.B,), op.bias, [self._interval(n.args[0])])
            A = op.A.f64
            for _ in range(n.dim):  # slot i holds slot j's previous value where A[i, j] = 1
                lo, hi = np.minimum(lo, A @ lo), np.maximum(hi, A @ hi)
            lo, hi = np.minimum(lo, 0.0), np.maximum(hi, 0.0)
            ints = ints & (A @ ints.astype(float) == A.sum(axis=1))
        else:
            return
        new_lo, new_hi = np.array(Facts.lo(self, n.id)), np.array(Facts.hi(self, n.id))
        self.derived[n.id] = (np.maximum(lo, new_lo), np.minimum(hi, new_hi),
                              ints | np.array(Facts.integers(self, n.id), dtype=bool))


def _affine(mats, bias, operands) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Interval arithmetic of sum_k M_k x_k + bias, and integrality (integer coefficients over integers)."""
    b = bias.f64
    lo, hi, ints = b.copy(), b.copy(), bias.rat.den == 1
    for M, (alo, ahi, aint) in zip(mats, operands, strict=True):
        W = M.f64
        with np.errstate(invalid="ignore"):  # 0 * inf
            lo = lo + np.where(W > 0, W * alo, 0.0).sum(axis=1) + np.where(W < 0, W * ahi, 0.0).sum(axis=1)
            hi = hi + np.where(W > 0, W * ahi, 0.0).sum(axis=1) + np.where(W < 0, W * alo, 0.0).sum(axis=1)
        ints = ints & (M.rat.den == 1) & ~((W != 0) & ~aint[None, :]).any(axis=1)
    return lo, hi, np.broadcast_to(ints, lo.shape).copy()




def _margin(val) -> float:
    """Smallest nonzero |x| over the values of one wire (inf when 0 is its only value)."""
    if val.rad:  # balls: the nearest edge of a ball not around 0 (0 where one is)
        return max(0.0, float(min(abs(c) for c in val.vals) - val.rad))
    if val.vals is not None:
        nz = [abs(v) for v in val.vals if v != 0]
        return float(min(nz)) if nz else math.inf
    if val.step is not None:  # the lattice off + k*step: nearest nonzero points to 0
        if val.lo > 0 or val.hi < 0:
            return float(min(abs(val.lo), abs(val.hi)))
        r = val.off % val.step
        return float(val.step if r == 0 else min(r, val.step - r))
    return 0.0 if val.lo <= 0 <= val.hi else float(min(abs(val.lo), abs(val.hi)))


def range_facts(graph: ir.Graph, program, max_len: int | None, before: tuple[Facts, dict[int, int]] | None = None
                ) -> Facts:
    """Range analysis of `graph` (an optimised program graph) for the program's input domain; `before`: the
    facts of the graph a legalisation rewrote into this one and the map of the nodes it kept."""
    if before is None:
        return Facts(analyze(graph, program.input.domain, max_len or DEFAULT_MAX_LEN))
    old, to_old = before  # kept nodes answer from `old`: the new analysis starts from their ranges
    known = {new: old.ranges[o] for new, o in to_old.items() if o in old.ranges.nodes}
    return CarriedFacts(analyze(graph, program.input.domain, max_len or DEFAULT_MAX_LEN, known), old, to_old)
