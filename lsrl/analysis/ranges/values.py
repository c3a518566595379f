"""Abstract values of one wire (`Val`: a set, a lattice or an interval) and their transfer functions."""

from __future__ import annotations

import math
from functools import reduce

from lsrl.analysis.ranges import limits
from lsrl.analysis.ranges.arith import INF, ZERO, Q, _add, _ceil_to, _Empty, _floor_to, _fmt, _gcd, _imul, _mul, _xmul
from lsrl.analysis.ranges.limits import SET_LIMIT, SMALL_SET, SUMSET_LIMIT


class Val:
    """The values one wire may take: a set (+- rad), a lattice {off + k step} in [lo, hi], or an interval."""

    __slots__ = ("lo", "hi", "step", "off", "vals", "rad")

    def __init__(self, lo, hi, step=None, off=None, vals=None, rad=ZERO):
        self.lo, self.hi, self.step, self.off, self.vals, self.rad = lo, hi, step, off, vals, rad

    # constructors (normalising)
    @staticmethod
    def const(v: Q) -> Val:
        return Val(v, v, vals=(v,))

    @staticmethod
    def of_set(values, rad: Q = ZERO) -> Val:
        vs = sorted(set(values))
        if not vs:
            raise _Empty
        if len(vs) == 1 and rad == 0:
            return Val.const(vs[0])
        if rad == 0 and len(vs) > SMALL_SET:
            d = vs[1] - vs[0]
            if all(vs[i + 1] - vs[i] == d for i in range(len(vs) - 1)):
                return Val(vs[0], vs[-1], step=d, off=vs[0] % d)
            if len(vs) > SET_LIMIT:
                step = reduce(_gcd, (v - vs[0] for v in vs[1:]), ZERO)
                return Val(vs[0], vs[-1], step=step, off=vs[0] % step)
        if len(vs) > SET_LIMIT:
            return Val.ival(vs[0] - rad, vs[-1] + rad)
        return Val(vs[0] - rad, vs[-1] + rad, vals=tuple(vs), rad=rad)

    @staticmethod
    def lat(off: Q, step: Q, lo, hi) -> Val:
        step = abs(step)
        if step == 0:
            if lo <= off <= hi:
                return Val.const(off)
            raise _Empty
        off = off % step
        lo, hi = _ceil_to(lo, off, step), _floor_to(hi, off, step)
        if lo > hi:
            raise _Empty
        if lo == hi:
            return Val.const(lo)
        if not isinstance(lo, float) and not isinstance(hi, float) and (hi - lo) / step < SMALL_SET:
            n = int((hi - lo) / step)
            return Val(lo, hi, vals=tuple(lo + k * step for k in range(n + 1)))
        return Val(lo, hi, step=step, off=off)

    @staticmethod
    def ival(lo, hi) -> Val:
        if lo > hi:
            raise _Empty
        if lo == hi:
            return Val.const(lo)
        return Val(lo, hi)

    @staticmethod
    def top() -> Val:
        return Val(-INF, INF)

    # queries
    @property
    def is_const(self) -> bool:
        return self.vals is not None and len(self.vals) == 1 and self.rad == 0

    @property
    def exact(self) -> bool:
        """A discrete set of exactly known values (set without radius, or lattice)."""
        return self.rad == 0 and (self.vals is not None or self.step is not None)

    def count(self):
        if self.vals is not None:
            return len(self.vals)
        if self.step is not None and not isinstance(self.lo, float) and not isinstance(self.hi, float):
            return int((self.hi - self.lo) / self.step) + 1
        return INF

    def lattice(self):
        """(off, step) with every value in off + step*Z (step 0: a single value); None if unknown."""
        if self.vals is not None:
            if self.rad:
                return None
            v0 = self.vals[0]
            return v0, reduce(_gcd, (v - v0 for v in self.vals[1:]), ZERO)
        if self.step is not None:
            return self.off, self.step
        return None

    def values(self, limit: int = SET_LIMIT):
        """The exact value set, if this is one of at most `limit` values."""
        if self.vals is not None:
            return self.vals if self.rad == 0 else None
        if self.step is not None and self.count() <= limit:
            return tuple(self.lo + k * self.step for k in range(self.count()))
        return None

    def integer(self) -> bool:
        if self.rad != 0:
            return False
        if self.vals is not None:
            return all(v.denominator == 1 for v in self.vals)
        return self.step is not None and self.off.denominator == 1 and self.step.denominator == 1

    def boolean(self) -> bool:
        return self.vals is not None and self.rad == 0 and all(v in (0, 1) for v in self.vals)

    def contains(self, x, tol=0) -> bool:
        """Whether x (a number) is one of the values, up to tol."""
        if not (self.lo - tol <= x <= self.hi + tol):
            return False
        if self.vals is not None:
            import bisect

            i = bisect.bisect_left(self.vals, x - self.rad - tol)
            return i < len(self.vals) and self.vals[i] <= x + self.rad + tol
        if self.step is not None:
            k = (x - self.off) / self.step
            if tol == 0:
                return k.denominator == 1 if isinstance(k, Q) else float(k).is_integer()  # x float: k is not Q
            return abs(float(x - (self.off + self.step * round(k)))) <= tol
        return True

    def __str__(self) -> str:
        if self.vals is not None:
            body = "{" + ", ".join(_fmt(v) for v in self.vals[:12]) + (", ..." if len(self.vals) > 12 else "") + "}"
            return body + (f" +- {float(self.rad):.3g}" if self.rad else "")
        if self.step is not None:
            return f"[{_fmt(self.lo)}, {_fmt(self.hi)}] in {_fmt(self.off)} + {_fmt(self.step)}Z"
        return f"[{_fmt(self.lo)}, {_fmt(self.hi)}]"

    __repr__ = __str__


def v_lin(terms, bias: Q, limit: int = SUMSET_LIMIT) -> Val:
    """sum c_i * v_i + bias; an explicit sumset when the sets' product is at most `limit` pairs."""
    c0, rest = bias, []
    for c, v in terms:
        if c == 0:
            continue
        if v.is_const:
            c0 += c * v.vals[0]
        else:
            rest.append((c, v))
    if not rest:
        return Val.const(c0)
    if all(v.vals is not None for _, v in rest) and math.prod(len(v.vals) for _, v in rest) <= limit:
        acc = {c0}
        for c, v in rest:
            cx = [c * x for x in v.vals]
            acc = {a + y for a in acc for y in cx}
            if len(acc) > SET_LIMIT:
                break
        else:
            return Val.of_set(acc, sum((abs(c) * v.rad for c, v in rest), ZERO))
    lo = hi = c0
    for c, v in rest:
        a, b = (v.lo, v.hi) if c > 0 else (v.hi, v.lo)
        lo, hi = _add(lo, _mul(c, a)), _add(hi, _mul(c, b))
    lats = [v.lattice() for _, v in rest]
    if all(lt is not None for lt in lats):
        off = c0 + sum((c * o for (c, _), (o, _s) in zip(rest, lats, strict=True)), ZERO)
        step = reduce(_gcd, (abs(c) * s for (c, _), (_o, s) in zip(rest, lats, strict=True)), ZERO)
        return Val.lat(off, step, lo, hi)
    return Val.ival(lo, hi)


def v_relu(v: Val) -> Val:
    if v.vals is not None:
        return Val.of_set([max(x, ZERO) for x in v.vals], v.rad)
    if v.hi <= 0:
        return Val.const(ZERO)
    if v.lo >= 0:
        return v
    if v.step is not None:
        p = _ceil_to(ZERO, v.off, v.step)  # the smallest lattice point >= 0
        if p == 0:
            return Val.lat(ZERO, v.step, ZERO, v.hi)
        if p == v.hi:
            return Val.of_set([ZERO, p])
        return Val.lat(ZERO, _gcd(v.step, p), ZERO, v.hi)
    return Val.ival(ZERO, v.hi)


def v_mul(u: Val, v: Val) -> Val:
    if u.is_const:
        return v_lin([(u.vals[0], v)], ZERO)
    if v.is_const:
        return v_lin([(v.vals[0], u)], ZERO)
    if u.vals is not None and v.vals is not None and len(u.vals) * len(v.vals) <= SUMSET_LIMIT:
        mu, mv = max(abs(x) for x in u.vals), max(abs(x) for x in v.vals)
        return Val.of_set({a * b for a in u.vals for b in v.vals}, mu * v.rad + mv * u.rad + u.rad * v.rad)
    lo, hi = _imul(u.lo, u.hi, v.lo, v.hi)
    lu, lv = u.lattice(), v.lattice()
    if lu is not None and lv is not None:
        (o1, s1), (o2, s2) = lu, lv
        return Val.lat(o1 * o2, _gcd(_gcd(s1 * o2, s2 * o1), s1 * s2), lo, hi)
    return Val.ival(lo, hi)


def v_sq(u: Val) -> Val:
    """u * u for one wire (the same value twice)."""
    if u.vals is not None:
        m = max(abs(x) for x in u.vals)
        return Val.of_set({x * x for x in u.vals}, 2 * m * u.rad + u.rad * u.rad)
    lo, hi = _sq_range(u.lo, u.hi)
    lt = u.lattice()
    if lt is not None:
        o, s = lt
        return Val.lat(o * o, _gcd(2 * o * s, s * s), lo, hi)
    return Val.ival(lo, hi)


def _sq_range(lo, hi):
    top = max(_xmul(lo, lo), _xmul(hi, hi))
    if lo >= 0:
        return _xmul(lo, lo), top
    if hi <= 0:
        return _xmul(hi, hi), top
    return ZERO, top


def v_join(parts: list[Val]) -> Val:
    if len(parts) == 1:
        return parts[0]
    if all(p.vals is not None for p in parts):
        return Val.of_set([x for p in parts for x in p.vals], max(p.rad for p in parts))
    lo, hi = min(p.lo for p in parts), max(p.hi for p in parts)
    lats = [p.lattice() for p in parts]
    if all(lt is not None for lt in lats):
        off0, step = lats[0][0], ZERO
        for off, st in lats:
            step = _gcd(_gcd(step, st), off - off0)
        return Val.lat(off0, step, lo, hi)
    return Val.ival(lo, hi)


def v_meet(a: Val, b: Val) -> Val:
    """Both a and b hold every value: keep what both allow (as precisely as one representation can)."""
    try:
        lo, hi = max(a.lo, b.lo), min(a.hi, b.hi)
        if lo > hi:
            raise _Empty
        sets = [x for x in (a, b) if x.vals is not None and x.rad == 0]
        if sets:
            s = min(sets, key=lambda x: len(x.vals))
            o = b if s is a else a
            return Val.of_set([v for v in s.vals if o.contains(v)])
        balls = [x for x in (a, b) if x.vals is not None]
        if balls:
            s = min(balls, key=lambda x: len(x.vals))
            return Val.of_set([v for v in s.vals if v + s.rad >= lo and v - s.rad <= hi], s.rad)
        lats = [x for x in (a, b) if x.step is not None]
        if lats:
            s = max(lats, key=lambda x: x.step)
            return Val.lat(s.off, s.step, lo, hi)
        return Val.ival(lo, hi)
    except _Empty:
        if limits._DEBUG:
            raise AssertionError(f"contradictory range facts {a} and {b}") from None
        return a
