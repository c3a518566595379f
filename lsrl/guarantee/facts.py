"""Facts for backends: what range analysis proved about each IR value, in the terms constructions ask for.

Backends pick their constants from these: the L of a ReLU if-else from `bound`, the small-signal scale of
a tanh unit from `bound` (states included: the analysis covers every step up to `max_len`), the sharpness of
a smooth ReLU surrogate from `relu_margin` (the smallest nonzero |argument|: outside it the surrogate
saturates and is float-exact), exact products from `values` (a factor with a few known values).
"""

from __future__ import annotations

import math
from fractions import Fraction

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

    def magnitudes(self, node: int) -> list[float]:
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

    def relu_margin(self, node: int) -> float:
        """For a ReLU node: the smallest nonzero |argument| over its components (0.0 when values may come
        arbitrarily close to the kink, e.g. an interval around 0)."""
        if node not in self._margins:
            arg = self.ranges.graph[node]
            if isinstance(arg.op, ir.ReLU):
                arg = self.ranges.graph[arg.args[0]]
            self._margins[node] = min((_margin(v) for v in self.ranges[arg.id].vals), default=math.inf)
        return self._margins[node]


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


def range_facts(graph: ir.Graph, program, max_len: int | None) -> Facts:
    """Range analysis of `graph` (an optimised program graph) for the program's input domain."""
    return Facts(analyze(graph, program.input.domain, max_len or DEFAULT_MAX_LEN))
