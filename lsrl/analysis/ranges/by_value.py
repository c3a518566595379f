"""Exact value set of a cone over one discrete member, evaluated at every value at once.

A support of one member with a known exact value set (the step counter's 1..max_len, typically) whose cone
has no float coefficient needs no piecewise evaluation (support.py): the cone is evaluated at every value of
the member at once, in exact integer vectors (RatArray). Piecewise evaluation would cut the member's range at
every kink of the cone: a binary decoder of the step number has thousands of pieces per bit.
"""

from __future__ import annotations

import math

import numpy as np

from lsrl.analysis.ranges.arith import Q
from lsrl.analysis.ranges.limits import VECTOR_WORK
from lsrl.analysis.ranges.values import Val
from lsrl.analysis.ranges.wires import LIN, RELU, STATELESS
from lsrl.ir.rational import RatArray


def cone_values(W, members: list[int], order: list[int], target: int) -> Val | None:
    """The target's exact value set over the single member's values (`order`: the cone's wires in topological
    order, their leaves the member or constants); None for several members, a float-derived wire or member, a
    wire that is not stateless, or more than VECTOR_WORK values x cone wires."""
    if len(members) != 1 or any(W[x].flt or W[x].kind not in STATELESS for x in order):
        return None
    m = members[0]
    xs = _all_values(W[m].val, VECTOR_WORK // max(1, len(order)))
    if xs is None:
        return None
    vec = {m: xs}

    def at(a: int) -> RatArray:
        return vec[a] if a in vec else _scalar(W[a].val.vals[0])
    for x in order:
        w = W[x]
        if w.kind == LIN:
            v = _scalar(w.bias)
            for c, a in zip(w.coefs, w.args, strict=True):
                v = v + _scalar(c) * at(a)
        elif w.kind == RELU:
            v = at(w.args[0]).relu()
        else:
            v = at(w.args[0]) * at(w.args[1])
        vec[x] = v
    out = vec[target]
    return Val.of_set(Q(int(n), out.den) for n in np.unique(np.broadcast_to(out.num, xs.shape)).tolist())


def _all_values(v: Val, limit: int) -> RatArray | None:
    """Every value of v as a RatArray (a lattice's from its offset and step, without a Fraction per value), or
    None past `limit` values or where v is not an exact set."""
    if not v.exact or v.count() > limit or any(type(x) is not Q for x in (v.vals or (v.lo, v.step))):
        return None  # (float values: a float-derived member)
    if v.vals is not None:
        den = math.lcm(*(int(x.denominator) for x in v.vals))
        return RatArray.normal(np.array([int(x * den) for x in v.vals], dtype=object), den)
    den = math.lcm(int(v.lo.denominator), int(v.step.denominator))
    lo, step, n = int(v.lo * den), int(v.step * den), v.count()
    if max(abs(lo), abs(lo + step * n)) < 2**62:
        return RatArray.normal(lo + step * np.arange(n, dtype=np.int64), den)
    return RatArray.normal(np.array([lo + step * k for k in range(n)], dtype=object), den)


def _scalar(q: Q) -> RatArray:
    """An exact rational as a 0-d RatArray (broadcasts against a member's values)."""
    return RatArray.normal(np.array(int(q.numerator), dtype=object), int(q.denominator))
