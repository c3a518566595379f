"""Range analysis: sound bounds (and value sets) for every IR value, from the input domain and a maximum length.

`analyze(graph, domain, max_len=DEFAULT_MAX_LEN)` returns `Ranges`: per node and component the interval
[lo, hi], whether the value is provably integer or provably in {0, 1}, and the exact value set when it is
finite and small. DEFAULT_MAX_LEN = 4096: sequences of at most this many steps (the step counter of
`counter()` then stays in [0, 4095]). Backends use it to pick the constants of ReLU realisations (the L of
b*v = relu(v - L(1-b)) - relu(-v - L(1-b))) as small as is provably safe; `require_bound` turns a missing
bound into a user error (E0601).

Semantics. Claims are about the graph evaluated in exact real arithmetic with its coefficients read as the
exact rationals they are (a float coefficient is a dyadic rational). Where a component is `float_derived`
(its computation involves a float coefficient), a float64 evaluation differs from that by rounding only.

Abstract domains (one per scalar component, "wire"): a finite set (optionally "balls": each member +- a
radius, for values known up to float rounding of a simulated orbit), an arithmetic lattice
{off + k*step} within [lo, hi], or an interval; all endpoints exact `Fraction`s or +-inf.

Rules (see docs/ranges.md): transfer functions per op; autonomous states by their orbit (exact simulation
with cycle detection, or a float simulation with a rigorous error bound, clustered into balls; step
counters s = init + t*b symbolically in the step number t); input-driven states by congruence and interval
iteration to a fixed point, intersected with a 2-norm bound; and "support expansion": a wire whose
operands are correlated (paths that converge, like relu(s*y + 1) - relu(s*y)) is re-evaluated exactly over
a cut of its cone whose members are independent, enumerating small sets (jointly for the components of one
orbit) and treating large ones symbolically with exact piecewise-affine splitting at ReLU kinks.
"""

from __future__ import annotations

import itertools
import math
import os
from dataclasses import dataclass, field
from fractions import Fraction
from functools import reduce
from types import MappingProxyType

import numpy as np

from lsrl.diagnostics import error
from lsrl.ir import graph as ir
from lsrl.program import Domain

DEFAULT_MAX_LEN = 4096

SET_LIMIT = 4096  # explicit value sets up to this many values
SMALL_SET = 16  # lattices with at most this many points are kept as explicit sets
SUMSET_LIMIT = 1 << 16  # transfer functions build explicit sums/products up to this many pairs
ENUM_MAX = 64  # a support member with at most this many values is enumerated (else symbolic)
ORBIT_ENUM_MAX = 512  # an orbit with at most this many points is enumerated jointly
ROW_LIMIT = 2048  # rows (points of the enumerated support members) of one enumeration
PIECE_LIMIT = 2048  # rows after piecewise-affine splitting, per enumeration
WORK_LIMIT = 30_000  # wire evaluations (over all rows and pieces) per enumeration
VALUES_LIMIT = 256  # NodeRange.values lists value sets up to this size (Ranges.values: up to SET_LIMIT)
MAX_DEPTH = 12  # nested splits of one row
MAX_DIRS = 6  # oblique cut directions per row
SPLIT_FANOUT = 8  # cut points used per split (the rest are cut in the pieces)
MAX_SUPPORT = 32  # members of a support
MAX_EXPANSIONS = 4000
ORBIT_LIMIT = 4096  # distinct orbit points (clusters) kept per autonomous state block
SIM_LIMIT = 1 << 16  # steps simulated for an orbit; longer max_len falls back to iteration
EXACT_BITS = 256  # exact orbit simulation gives up beyond this many bits per entry
BALL_REL = 1e-6  # an enumerated result this narrow (relative) is kept as a ball, not an interval

ZERO, ONE = Fraction(0), Fraction(1)
INF = math.inf
_DEBUG = bool(os.environ.get("LSRL_RANGES_DEBUG"))


class _Empty(Exception):
    """An abstract value with no element (an empty row piece, or contradictory facts)."""


# ---------------------------------------------------------------- extended rationals (Fraction or +-inf)


def _frac(x) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x)


def _ext(x):
    """A domain bound as an extended rational."""
    if isinstance(x, float) and math.isinf(x):
        return x
    return _frac(x)


def _mul(c: Fraction, x):
    """c * x for rational c and extended x, with 0 * inf = 0."""
    if isinstance(x, float):
        return ZERO if c == 0 else (x if c > 0 else -x)
    return c * x


def _xmul(a, b):
    """a * b for extended a, b, with 0 * inf = 0."""
    if a == 0 or b == 0:
        return ZERO
    if isinstance(a, float) or isinstance(b, float):
        return INF if (a > 0) == (b > 0) else -INF
    return a * b


def _add(a, b):
    if isinstance(a, float):
        if isinstance(b, float) and b != a:
            raise ArithmeticError("inf - inf in range arithmetic")
        return a
    if isinstance(b, float):
        return b
    return a + b


def _gcd(a: Fraction, b: Fraction) -> Fraction:
    """gcd of rationals: the largest g with a/g, b/g integers (gcd(a, 0) = |a|)."""
    a, b = abs(a), abs(b)
    if a == 0:
        return b
    if b == 0:
        return a
    return Fraction(math.gcd(a.numerator * b.denominator, b.numerator * a.denominator),
                    a.denominator * b.denominator)


def _ceil_to(x, off: Fraction, step: Fraction):
    """The smallest lattice point >= x."""
    if isinstance(x, float):
        return x
    return off + step * math.ceil((x - off) / step)


def _floor_to(x, off: Fraction, step: Fraction):
    if isinstance(x, float):
        return x
    return off + step * math.floor((x - off) / step)


def _imul(alo, ahi, blo, bhi):
    ps = [_xmul(alo, blo), _xmul(alo, bhi), _xmul(ahi, blo), _xmul(ahi, bhi)]
    return min(ps), max(ps)


def _fmt(x) -> str:
    if isinstance(x, float):
        return "inf" if x > 0 else "-inf"
    if x.denominator == 1:
        return str(x.numerator)
    if x.denominator < 10 ** 6 and abs(x.numerator) < 10 ** 9:
        return f"{x.numerator}/{x.denominator}"
    return f"{float(x):.17g}"


def _up(x: float) -> Fraction:
    """An exact rational >= the float x (x finite, >= 0), with a little slack for our own rounding."""
    return Fraction(float(np.nextafter(x * (1 + 1e-9) + 1e-300, np.inf)))


# ---------------------------------------------------------------- abstract values


class Val:
    """The values one wire may take: a set (+- rad), a lattice {off + k step} in [lo, hi], or an interval."""

    __slots__ = ("lo", "hi", "step", "off", "vals", "rad")

    def __init__(self, lo, hi, step=None, off=None, vals=None, rad=ZERO):
        self.lo, self.hi, self.step, self.off, self.vals, self.rad = lo, hi, step, off, vals, rad

    # constructors (normalising)
    @staticmethod
    def const(v: Fraction) -> Val:
        return Val(v, v, vals=(v,))

    @staticmethod
    def of_set(values, rad: Fraction = ZERO) -> Val:
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
    def lat(off: Fraction, step: Fraction, lo, hi) -> Val:
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
                return Fraction(k).denominator == 1 if isinstance(x, Fraction) else float(k).is_integer()
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


def v_lin(terms, bias: Fraction) -> Val:
    """sum c_i * v_i + bias."""
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
    if all(v.vals is not None for _, v in rest) and math.prod(len(v.vals) for _, v in rest) <= SUMSET_LIMIT:
        acc = {c0}
        for c, v in rest:
            acc = {a + c * x for a in acc for x in v.vals}
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
        if _DEBUG:
            raise AssertionError(f"contradictory range facts {a} and {b}") from None
        return a


# ---------------------------------------------------------------- wires

IN, LIN, RELU, MUL, STATE = "input", "linear", "relu", "multi", "state"
STATELESS = (LIN, RELU, MUL)


class _Wire:
    """One scalar component of a node (or of a state's drive B x + bias)."""

    __slots__ = ("kind", "args", "coefs", "bias", "pos", "node", "comp", "flt", "src", "val", "key", "aux")

    def __init__(self, kind, node, comp, pos, args=(), coefs=(), bias=ZERO, flt=False):
        self.kind, self.node, self.comp, self.pos = kind, node, comp, pos
        self.args, self.coefs, self.bias, self.flt = args, coefs, bias, flt
        self.src: frozenset = frozenset()
        self.val: Val | None = None
        self.key = None  # states: "time", ("orbit", node, block) or ("s", node, comp)
        self.aux = None  # time: (init, b), s = init + t b; orbit: index in the block


# ---------------------------------------------------------------- results


@dataclass(frozen=True)
class NodeRange:
    """Per component of one node: bounds, integrality, booleanity, value set (None: not finite/small)."""

    node: int
    lo: tuple
    hi: tuple
    integer: tuple[bool, ...]
    boolean: tuple[bool, ...]
    values: tuple
    float_derived: tuple[bool, ...]

    @property
    def bound(self) -> float:
        return max((max(abs(float(a)), abs(float(b))) for a, b in zip(self.lo, self.hi, strict=True)), default=0.0)


@dataclass(frozen=True)
class Ranges:
    """The result of `analyze`: a NodeRange per node id, plus how states were analysed."""

    graph: ir.Graph
    max_len: int
    domain: Domain | None
    nodes: MappingProxyType
    notes: MappingProxyType  # node id -> how its state was analysed (states only)
    _vals: MappingProxyType = field(repr=False)  # node id -> tuple of Val per component
    orbits: MappingProxyType = field(repr=False)  # node id -> joint orbit points per block

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
        return all(lo >= 0 for lo in self.nodes[node_id].lo)

    def values(self, node_id: int, comp: int = 0, limit: int = SET_LIMIT):
        """The exact value set of one component if it has at most `limit` values, else None."""
        return self._vals[node_id][comp].values(limit)

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
        vals = self._vals[node_id]
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


# ---------------------------------------------------------------- the analysis


def analyze(graph: ir.Graph, domain: Domain | None, max_len: int = DEFAULT_MAX_LEN) -> Ranges:
    """Sound ranges of every node of `graph` for inputs in `domain` (per component) and lengths <= max_len."""
    if max_len < 1:
        raise ValueError("max_len must be at least 1")
    return _Analysis(graph, domain, int(max_len)).run()


class _Analysis:
    def __init__(self, graph: ir.Graph, domain: Domain | None, max_len: int):
        self.g, self.domain, self.L = graph, domain, max_len
        self.wires: list[_Wire] = []
        self.alias: dict[tuple[int, int], int] = {}
        self.orbits: dict[tuple, list] = {}
        self.notes: dict[int, str] = {}

    # -- driver
    def run(self) -> Ranges:
        for pos, node in enumerate(self.g.nodes):
            op = node.op
            if isinstance(op, ir.Input):
                self._input(pos, node)
            elif isinstance(op, ir.Linear):
                for i in range(node.dim):
                    w = self._linear_row(node, i, pos, op.mats, node.args, op.bias.data[i])
                    self.alias[(node.id, i)] = w
            elif isinstance(op, ir.ReLU):
                for i in range(node.dim):
                    a = self.alias[(node.args[0], i)]
                    w = _Wire(RELU, node.id, i, pos, (a,), flt=self.wires[a].flt)
                    self.alias[(node.id, i)] = self._stateless(w)
            elif isinstance(op, ir.Multi):
                for i in range(node.dim):
                    a, b = self.alias[(node.args[0], i)], self.alias[(node.args[1], i)]
                    flt = self.wires[a].flt or self.wires[b].flt
                    self.alias[(node.id, i)] = self._stateless(_Wire(MUL, node.id, i, pos, (a, b), flt=flt))
            elif isinstance(op, ir.Concat):
                k = 0
                for a in node.args:
                    for j in range(self.g[a].dim):
                        self.alias[(node.id, k)] = self.alias[(a, j)]
                        k += 1
            elif isinstance(op, ir.Slice):
                for i, j in enumerate(op.indices):
                    self.alias[(node.id, i)] = self.alias[(node.args[0], j)]
            elif isinstance(op, ir.LinState):
                self._state(pos, node)
            else:  # pragma: no cover - the IR has no other ops
                raise TypeError(f"unknown op {op!r}")
        return self._result()

    def _result(self) -> Ranges:
        nodes, vals, orbits = {}, {}, {}
        for n in self.g.nodes:
            ws = [self.wires[self.alias[(n.id, i)]] for i in range(n.dim)]
            vs = tuple(w.val for w in ws)
            vals[n.id] = vs
            nodes[n.id] = NodeRange(
                n.id, tuple(v.lo for v in vs), tuple(v.hi for v in vs), tuple(v.integer() for v in vs),
                tuple(v.boolean() for v in vs), tuple(v.values(VALUES_LIMIT) for v in vs), tuple(w.flt for w in ws))
        for key, pts in self.orbits.items():
            orbits.setdefault(key[1], []).append((key[2], pts))
        return Ranges(self.g, self.L, self.domain, MappingProxyType(nodes), MappingProxyType(dict(self.notes)),
                      MappingProxyType(vals), MappingProxyType({k: tuple(v) for k, v in orbits.items()}))

    # -- node kinds
    def _new(self, w: _Wire) -> int:
        self.wires.append(w)
        return len(self.wires) - 1

    def _input(self, pos, node):
        d = self.domain
        if d is None:
            val = Val.top()
        elif d.kind == "set":
            val = Val.of_set(_frac(v) for v in d.values)
        else:
            val = Val.ival(_ext(d.values[0]), _ext(d.values[1]))
        for i in range(node.dim):
            w = _Wire(IN, node.id, i, pos)
            w.val = val
            if not val.is_const:
                w.src = frozenset([("x", i)])
            self.alias[(node.id, i)] = self._new(w)

    def _linear_row(self, node, i, pos, mats, args, bias) -> int:
        acc: dict[int, Fraction] = {}
        flt = isinstance(bias, float) and bias != 0
        for m, a in zip(mats, args, strict=True):
            for j, coef in enumerate(m.data[i]):
                if coef != 0:
                    w = self.alias[(a, j)]
                    acc[w] = acc.get(w, ZERO) + _frac(coef)
                    flt = flt or isinstance(coef, float) or self.wires[w].flt
        items = [(w, c) for w, c in acc.items() if c != 0]
        return self._stateless(_Wire(LIN, node.id, i, pos, tuple(w for w, _ in items), tuple(c for _, c in items),
                                     _frac(bias), flt))

    def _stateless(self, w: _Wire) -> int:
        idx = self._new(w)
        W = self.wires
        if w.kind == LIN:
            val = v_lin([(c, W[a].val) for c, a in zip(w.coefs, w.args, strict=True)], w.bias)
        elif w.kind == RELU:
            val = v_relu(W[w.args[0]].val)
        else:
            a, b = w.args
            val = v_sq(W[a].val) if a == b else v_mul(W[a].val, W[b].val)
        w.val = val
        gate = w.kind == MUL and any(W[a].val.boolean() for a in w.args)  # {0} u the other: already tight
        if not val.is_const and not val.boolean() and not gate:
            e = self._enumerate(idx)
            if e is not None:
                w.val = val = v_meet(val, e)
        if not val.is_const:
            w.src = frozenset().union(*(W[a].src for a in w.args if not W[a].val.is_const))
        return idx

    # -- states
    def _state(self, pos, node):
        op: ir.LinState = node.op
        d = node.dim
        A = [[_frac(x) for x in row] for row in op.A.data]
        init = [_frac(x) for x in op.init.data]
        flt = any(isinstance(x, float) and x != 0 for c in (op.A, op.init, op.bias) for x in c.data.reshape(-1))
        drives = []
        for i in range(d):
            if op.B is not None and node.args:
                w = self._linear_row(node, i, pos - 0.5, (op.B,), node.args, op.bias.data[i])
            else:
                w = self._stateless(_Wire(LIN, node.id, i, pos - 0.5, (), (), _frac(op.bias.data[i]),
                                          isinstance(op.bias.data[i], float) and op.bias.data[i] != 0))
            drives.append(w)
        dvals = [self.wires[w].val for w in drives]
        dflt = [self.wires[w].flt for w in drives]
        out: list[tuple[Val, object, object]] = [None] * d  # (val, key, aux) per component
        notes = []
        for blk in _blocks(A):
            Ab = [[A[i][j] for j in blk] for i in blk]
            dv = [dvals[i] for i in blk]
            s0 = [init[i] for i in blk]
            if all(v.is_const for v in dv):
                res, note = self._autonomous(node, blk, Ab, [v.vals[0] for v in dv], s0)
            else:
                res, note = self._driven(node, blk, Ab, dv, s0)
            notes.append(note)
            for i, r in zip(blk, res, strict=True):
                out[i] = r
        self.notes[node.id] = "; ".join(notes)
        for i in range(d):
            val, key, aux = out[i]
            w = _Wire(STATE, node.id, i, pos, flt=flt or any(dflt))
            w.val, w.aux = val, aux
            if not val.is_const:
                w.key = key if key is not None else ("s", node.id, i)
                w.src = frozenset([w.key])
            self.alias[(node.id, i)] = self._new(w)

    def _autonomous(self, node, blk, Ab, b, s0):
        L = self.L
        if len(blk) == 1 and Ab[0][0] == 1:  # a step counter: s_t = s0 + t b
            if b[0] == 0:
                return [(Val.const(s0[0]), None, None)], "constant"
            lo, hi = sorted((s0[0] + b[0], s0[0] + L * b[0]))
            val = Val.lat(s0[0] + b[0], b[0], lo, hi)
            return [(val, "time", (s0[0], b[0]))], f"counter {_fmt(s0[0])} + n*{_fmt(b[0])} at step n = 1..{L}"
        pts = _orbit_exact(Ab, b, s0, L)
        how = "exact orbit"
        if pts is None:
            pts = _orbit_float(Ab, b, s0, L)
            how = "float orbit (rigorous error balls)"
        if pts is None:
            dv = [Val.const(x) for x in b]
            res, note = self._driven(node, blk, Ab, dv, s0)
            return res, "no orbit: " + note
        key = ("orbit", node.id, blk[0])
        res = []
        for k in range(len(blk)):
            val = Val.of_set([p[k] for p, _, _ in pts], max(r for _, r, _ in pts))
            res.append((val, key, k))
        if all(v.is_const for v, _, _ in res):
            return res, "constant"
        self.orbits[key] = pts
        rmax = max(r for _, r, _ in pts)
        return res, f"{how}: {len(pts)} points" + (f" (radius {float(rmax):.2g})" if rmax else "")

    def _driven(self, node, blk, Ab, dv, s0):
        L, n = self.L, len(blk)
        if n == 1 and Ab[0][0] == 1:  # an accumulator: s_t = s0 + sum of t drives
            v = dv[0]
            lo = _add(s0[0], v.lo if v.lo >= 0 else _mul(Fraction(L), v.lo))
            hi = _add(s0[0], v.hi if v.hi <= 0 else _mul(Fraction(L), v.hi))
            lt = v.lattice()
            if lt is not None:
                od, sd = lt
                val = Val.lat(s0[0] + od, _gcd(sd, od) if L >= 2 else sd, lo, hi)
            else:
                val = Val.ival(lo, hi)
            return [(val, None, None)], "accumulator"
        if n == 1 and Ab[0][0] == 0:
            return [(dv[0], None, None)], "memoryless"
        lats = _congruence(Ab, dv, s0)
        lo, hi, how = _box_iteration(Ab, dv, s0, L)
        snapped = _exact_invariant(Ab, dv, s0, lo, hi)
        if snapped is not None:
            lo, hi = snapped
            how += ", exact invariant box"
        R = _norm_bound(Ab, dv, s0, L)
        res = []
        for i in range(n):
            a, b = lo[i], hi[i]
            if R is not None:
                a, b = max(a, -R), min(b, R)
            if lats[i] is not None:
                val = Val.lat(lats[i][0], lats[i][1], a, b)
            else:
                val = Val.ival(a, b)
            res.append((val, None, None))
        return res, how + (", 2-norm bound" if R is not None else "") + (
            ", lattice" if any(lt is not None for lt in lats) else "")

    # -- support expansion
    def _ops(self, w: int) -> set[int]:
        W = self.wires
        return {a for a in W[w].args if not W[a].val.is_const}

    def _support(self, w: int):
        W = self.wires
        S = self._ops(w)
        expanded = False
        for _ in range(MAX_EXPANSIONS):
            if len(S) > 1024:  # paths may fan out before they converge: allow more on the way
                return None
            owner: dict = {}
            for m in S:
                for k in W[m].src:
                    owner.setdefault(k, []).append(m)
            bad = {m for ms in owner.values() if len(ms) > 1 for m in ms if W[m].kind in STATELESS}
            if not bad:
                if len(S) == 1:  # one member: look inside it if it mixes the step number with an orbit
                    (m,) = S
                    if W[m].kind == LIN and "time" in W[m].src and \
                            any(k[0] == "orbit" for k in W[m].src if k != "time"):
                        S = self._ops(m)
                        expanded = True
                        continue
                # worth enumerating when paths converged, or members are components of one orbit
                joint = any(len(ms) > 1 for ms in owner.values())
                return S if (expanded or joint) and len(S) <= MAX_SUPPORT else None
            m = max(bad, key=lambda m: (W[m].pos, m))
            S.discard(m)
            S |= self._ops(m)
            expanded = True
        return None

    def _enumerate(self, w: int):
        S = self._support(w)
        if S is None:
            return None
        try:
            return _Enumeration(self, w, S).run()
        except _Empty:
            if _DEBUG:
                raise
            return None


# ---------------------------------------------------------------- state helpers


def _blocks(A) -> list[list[int]]:
    """Components coupled through A (connected components of its sparsity pattern), each sorted."""
    n = len(A)
    parent = list(range(n))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i in range(n):
        for j in range(n):
            if A[i][j] != 0:
                parent[find(i)] = find(j)
    groups: dict[int, list[int]] = {}
    for i in range(n):
        groups.setdefault(find(i), []).append(i)
    return sorted(groups.values())


def _orbit_exact(A, b, s0, L):
    """The distinct states s_1.. s_L (exact), stopping at the first repeat; None if too big or too long."""
    n = len(A)
    rows = [[(j, a) for j, a in enumerate(row) if a != 0] for row in A]
    ints = all(a.denominator == 1 for row in A for a in row)
    if ints:  # scale to integers: s' = D s
        D = math.lcm(*(x.denominator for x in (*b, *s0)))
        rows = [[(j, int(a)) for j, a in row] for row in rows]
        bi = [int(x * D) for x in b]
        s = tuple(int(x * D) for x in s0)
    else:
        D, bi, s = 1, list(b), tuple(s0)
    seen: dict = {}
    pts = []
    cycle = None  # index of the first point of the cycle the orbit ends in
    for _ in range(min(L, SIM_LIMIT)):
        s = tuple(sum((a * s[j] for j, a in rows[i]), bi[i]) for i in range(n))
        if s in seen:
            cycle = seen[s]
            break
        if ints:
            if any(abs(x).bit_length() > EXACT_BITS for x in s):
                return None
        elif any(x.denominator.bit_length() > EXACT_BITS or abs(x.numerator).bit_length() > EXACT_BITS for x in s):
            return None
        seen[s] = len(pts)
        pts.append(s)
        if len(pts) > ORBIT_LIMIT:
            return None
    else:
        if L > SIM_LIMIT:
            return None
    # point i is s_{i+1}; points on the final cycle recur every p steps
    p = 0 if cycle is None else len(pts) - cycle
    times = [(i + 1, p if cycle is not None and i >= cycle else 0) for i in range(len(pts))]
    if ints:
        pts = [tuple(Fraction(x, D) for x in q) for q in pts]
    return [(q, ZERO, tm) for q, tm in zip(pts, times, strict=True)]


def _rho(A) -> float:
    """An upper bound on the spectral norm ||A||_2 (exact rational bounds, rounded up)."""
    n = len(A)
    absA = [[abs(a) for a in row] for row in A]
    n1 = max(sum(absA[i][j] for i in range(n)) for j in range(n))
    ninf = max(sum(row) for row in absA)
    best = float(n1 * ninf)
    if n <= 24:
        M = [[sum((A[k][i] * A[k][j] for k in range(n)), ZERO) for j in range(n)] for i in range(n)]
        best = min(best, float(max(sum(abs(x) for x in row) for row in M)))
    return math.sqrt(best) * (1 + 1e-12) + 1e-300


def _orbit_float(A, b, s0, L):
    """Float-simulated orbit with a rigorous 2-norm error bound per step, clustered into balls; or None."""
    if L > SIM_LIMIT:
        return None
    n = len(A)
    Af = np.array([[float(a) for a in row] for row in A])
    bf = np.array([float(x) for x in b])
    sf = np.array([float(x) for x in s0])
    dA = math.sqrt(float(sum(((a - Fraction(float(a))) ** 2 for row in A for a in row), ZERO)))
    db = math.sqrt(float(sum(((x - Fraction(float(x))) ** 2 for x in b), ZERO)))
    e0 = math.sqrt(float(sum(((x - Fraction(float(x))) ** 2 for x in s0), ZERO)))
    pts = np.empty((L + 1, n))
    pts[0] = sf
    s = sf
    with np.errstate(all="ignore"):
        for t in range(1, L + 1):
            s = Af @ s + bf
            pts[t] = s
        if not np.all(np.isfinite(pts)):
            return None
        gam = 1.01 * (n + 2) * 2.0 ** -53
        prev = np.abs(pts[:-1])
        eta = gam * np.linalg.norm(prev @ np.abs(Af).T + np.abs(bf), axis=1) \
            + dA * np.linalg.norm(pts[:-1], axis=1) + db
    rho = _rho(A)
    errs = np.empty(L)
    e = e0
    for t in range(L):
        e = rho * e + float(eta[t]) * (1 + 1e-12)
        errs[t] = e
    if not math.isfinite(e):
        return None
    P = pts[1:]
    scale = 1.0 + float(np.abs(P).max())
    tol = max(1e-9 * scale, 1e3 * float(errs.max()))
    reps = np.empty((min(L, ORBIT_LIMIT + 1), n))
    rad = np.zeros(len(reps))
    nr = 0
    assign = np.empty(L, dtype=np.int64)
    for t in range(L):
        p = P[t]
        if nr:
            dist = np.abs(reps[:nr] - p).max(axis=1)
            k = int(dist.argmin())
            if dist[k] <= tol:
                rad[k] = max(rad[k], dist[k] + errs[t])
                assign[t] = k
                continue
        if nr > ORBIT_LIMIT - 1:
            return None
        reps[nr], rad[nr] = p, errs[t]
        assign[t] = nr
        nr += 1
    out = []
    for k in range(nr):
        taus = np.nonzero(assign == k)[0] + 1  # the steps at which the orbit is in this ball
        step = int(np.gcd.reduce(np.diff(taus))) if len(taus) > 1 else 0
        out.append((tuple(Fraction(float(x)) for x in reps[k]), _up(float(rad[k])), (int(taus[0]), step)))
    return out


def _congruence(A, dv, s0):
    """Per component (off, step) with s_t in off + step Z for all t, or None (a lattice fixed point)."""
    n = len(A)
    dl = [v.lattice() for v in dv]
    cur = [(s0[i], ZERO) for i in range(n)]

    def norm(lt):
        return lt if lt is None or lt[1] == 0 else (lt[0] % lt[1], lt[1])

    for _ in range(64):
        nxt = []
        for i in range(n):
            if dl[i] is None:
                nxt.append(None)
                continue
            off, st = dl[i]
            for j in range(n):
                a = A[i][j]
                if a != 0:
                    if cur[j] is None:
                        off = None
                        break
                    off += a * cur[j][0]
                    st = _gcd(st, abs(a) * cur[j][1])
            nxt.append(None if off is None else (off, st))
        joined = []
        for c, m in zip(cur, nxt, strict=True):
            if c is None or m is None:
                joined.append(None)
            else:
                joined.append(norm((c[0], _gcd(_gcd(c[1], m[1]), m[0] - c[0]))))
        if joined == [norm(c) for c in cur]:
            return [None if c is None or c[1] == 0 else c for c in joined]
        cur = joined
    return [None] * n


def _imatvec(Af, absA, lo, hi, dlo, dhi):
    """Outward-rounded interval A [lo, hi] + [dlo, dhi] in float64."""
    n = len(lo)
    with np.errstate(all="ignore"):
        z = Af == 0
        p1, p2 = np.where(z, 0.0, Af * lo[None, :]), np.where(z, 0.0, Af * hi[None, :])
        slo = np.minimum(p1, p2).sum(axis=1) + dlo
        shi = np.maximum(p1, p2).sum(axis=1) + dhi
        mag = np.where(z, 0.0, absA * np.maximum(np.abs(lo), np.abs(hi))[None, :]).sum(axis=1)
        err = (n + 3) * 2.0 ** -52 * (mag + np.maximum(np.abs(dlo), np.abs(dhi))) + 1e-300
        return slo - err, shi + err


def _box_iteration(A, dv, s0, L):
    """Bounds on s_1..s_L: Kleene iteration X <- X u (A X + D) from X = {s0} (early exit at a fixed point)."""
    Af = np.array([[float(a) for a in row] for row in A])
    absA = np.abs(Af)
    dlo = np.array([float(v.lo) for v in dv])
    dhi = np.array([float(v.hi) for v in dv])
    s = np.array([float(x) for x in s0])
    lo, hi = np.nextafter(s, -np.inf), np.nextafter(s, np.inf)
    how = f"interval iteration ({L} steps)"
    for k in range(L - 1):
        ylo, yhi = _imatvec(Af, absA, lo, hi, dlo, dhi)
        nlo, nhi = np.minimum(lo, ylo), np.maximum(hi, yhi)
        if np.array_equal(nlo, lo) and np.array_equal(nhi, hi):
            how = f"interval fixed point after {k + 1} steps"
            break
        lo, hi = nlo, nhi
        if k % 16 == 15:  # try a slightly widened box: if A X + D stays inside, it is a fixed point
            wlo = lo - 1e-9 * (np.abs(lo) + 1e-9)
            whi = hi + 1e-9 * (np.abs(hi) + 1e-9)
            ylo, yhi = _imatvec(Af, absA, wlo, whi, dlo, dhi)
            if np.all(ylo >= wlo) and np.all(yhi <= whi):
                lo, hi = wlo, whi
                how = f"interval fixed point after {k + 1} steps (widened)"
                break
    ylo, yhi = _imatvec(Af, absA, lo, hi, dlo, dhi)
    conv = [(-INF if not np.isfinite(a) else Fraction(float(a)), INF if not np.isfinite(b) else Fraction(float(b)))
            for a, b in zip(ylo, yhi, strict=True)]
    return [c[0] for c in conv], [c[1] for c in conv], how


def _exact_invariant(A, dv, s0, lo, hi):
    """Float bounds snapped to nearby simple rationals, kept if the box is provably invariant (exactly:
    it holds s0 and A box + D lies inside), in which case A box + D bounds s_1..s_L; else None."""
    n = len(A)
    if n > 64 or any(isinstance(x, float) for x in (*lo, *hi)) or \
            any(isinstance(v.lo, float) or isinstance(v.hi, float) for v in dv):
        return None
    for D in (1 << 20, 1 << 10, 16, 1):
        box = _check_invariant(A, dv, s0, [Fraction(math.floor((x + Fraction(1, 10 ** 9) * (1 + abs(x))) * D), D)
                                           for x in lo],
                               [Fraction(math.ceil((x - Fraction(1, 10 ** 9) * (1 + abs(x))) * D), D) for x in hi])
        if box is not None:
            return [max(a, b) for a, b in zip(lo, box[0], strict=True)], \
                [min(a, b) for a, b in zip(hi, box[1], strict=True)]
    return None


def _check_invariant(A, dv, s0, blo, bhi):
    n = len(A)
    if any(not (a <= x <= b) for a, x, b in zip(blo, s0, bhi, strict=True)):
        return None
    ylo, yhi = [], []
    for i in range(n):
        a, b = dv[i].lo, dv[i].hi
        for j in range(n):
            c = A[i][j]
            if c > 0:
                a, b = a + c * blo[j], b + c * bhi[j]
            elif c < 0:
                a, b = a + c * bhi[j], b + c * blo[j]
        if a < blo[i] or b > bhi[i]:
            return None
        ylo.append(a)
        yhi.append(b)
    return ylo, yhi


def _norm_bound(A, dv, s0, L):
    """R with ||s_t||_2 <= R for t <= L, from ||s_t|| <= rho ||s_{t-1}|| + max ||d||; None if unbounded/useless."""
    if any(isinstance(v.lo, float) or isinstance(v.hi, float) for v in dv):
        return None
    rho = _rho(A)
    dn = math.sqrt(sum(float(max(abs(v.lo), abs(v.hi))) ** 2 for v in dv)) * (1 + 1e-12)
    R = math.sqrt(sum(float(x) ** 2 for x in s0)) * (1 + 1e-12)
    best = 0.0
    for _ in range(L):
        R = rho * R + dn
        best = max(best, R)
        if not math.isfinite(R):
            return None
    return _up(best)


# ---------------------------------------------------------------- enumeration over a support


class _Row:
    __slots__ = ("fixed", "box", "dirs", "lat", "ech")

    def __init__(self, fixed, box, dirs, lat):
        # dirs: constraints (u, zlo, zhi, zlat) on z = u . y; lat: per coordinate lattice (off, step) or None
        self.fixed, self.box, self.dirs, self.lat = fixed, box, dirs, lat
        self.ech = None


def _join_times(a, b):
    """The lattice of step numbers holding both lattices a and b (each (first, period); period 0: once)."""
    off = min(a[0], b[0])
    return off, math.gcd(math.gcd(a[1], b[1]), abs(a[0] - b[0]))


def _crt(a, b):
    """Step numbers in both integer lattices a and b (each (off, step), step 0 = one number), or None."""
    (o1, s1), (o2, s2) = a, b
    if s1 == 0 or s2 == 0:
        if s1 == 0 and s2 == 0:
            return a if o1 == o2 else None
        (o, _), (oo, ss) = (a, b) if s1 == 0 else (b, a)
        return (o, 0) if (o - oo) % ss == 0 else None
    g = math.gcd(s1, s2)
    if (o2 - o1) % g:
        return None
    m = s1 // g * s2
    k = ((o2 - o1) // g * pow(s1 // g, -1, s2 // g)) % (s2 // g) if s2 // g > 1 else 0
    return ((o1 + s1 * k) % m, m)


_ZF = (ZERO, {}, ZERO, ZERO)  # the zero affine form


def _fan(pts: list) -> list:
    """At most SPLIT_FANOUT evenly spread cut points: many kinks are cut over a few levels, so that each
    level re-evaluates only the ReLUs still undecided in its piece."""
    if len(pts) <= SPLIT_FANOUT:
        return pts
    n = len(pts)
    return [pts[(i * n) // (SPLIT_FANOUT + 1)] for i in range(1, SPLIT_FANOUT + 1)]


def _parallel(g: dict, u: dict):
    """alpha with g = alpha u (as dicts of nonzero entries), or None."""
    if not g or g.keys() != u.keys():
        return None
    k0 = next(iter(u))
    alpha = g[k0] / u[k0]
    return alpha if all(g[k] == alpha * u[k] for k in u) else None


class _Enumeration:
    """Evaluates one wire exactly over a cut (support) of its cone.

    Each row fixes the values of the enumerated support members and gives a box for the symbolic
    coordinates ("wide": a large set/lattice/interval, or the step number t of counters; "ball": an orbit
    point known up to a radius). Every cone wire is an affine form c + g . y plus a remainder interval;
    a ReLU whose argument changes sign in a row splits the row at the kink (exact, along the direction
    of the argument) so that every piece is affine again.
    """

    def __init__(self, an: _Analysis, target: int, S: set[int]):
        self.an, self.target = an, target
        W = an.wires
        cone, stack = set(), [target]
        while stack:
            x = stack.pop()
            if x in cone or x in S:
                continue
            cone.add(x)
            stack.extend(a for a in W[x].args if a not in S and not W[a].val.is_const)
        self.order = sorted(cone, key=lambda x: (W[x].pos, x))
        self.members = sorted(S, key=lambda x: (W[x].pos, x))
        self.wide: list[bool] = []
        self.lat: list = []
        self.base_box: list = []
        self.symform: dict[int, tuple] = {}
        self.budget = PIECE_LIMIT

    def _coord(self, wide: bool, lat, box) -> int:
        self.wide.append(wide)
        self.lat.append(lat)
        self.base_box.append(box)
        return len(self.wide) - 1

    def _wide(self, m: int, v: Val):
        lt = v.lattice()
        k = self._coord(True, lt if lt is not None and lt[1] != 0 else None, (v.lo, v.hi))
        self.symform[m] = (ZERO, {k: ONE})

    def _rows(self) -> list[_Row]:
        an, W = self.an, self.an.wires
        groups: list[tuple[str, object, list[int]]] = []  # (kind, info, members)
        time_ms, orbit_ms = [], {}
        for m in self.members:
            w = W[m]
            if w.kind == STATE and w.key == "time":
                time_ms.append(m)
            elif w.kind == STATE and w.key in an.orbits:
                orbit_ms.setdefault(w.key, []).append(m)
            else:
                groups.append(("single", W[m].val, [m]))
        self.tau = None
        if time_ms:
            k = self.tau = self._coord(True, (ONE, ONE), (ONE, Fraction(an.L)))
            for m in time_ms:
                s0, b = W[m].aux
                self.symform[m] = (s0, {k: b})
        for key, ms in orbit_ms.items():
            idx = [W[m].aux for m in ms]
            proj: dict = {}  # projected point -> the steps at which it occurs (a lattice of step numbers)
            for p, r, tm in an.orbits[key]:
                q = (tuple(p[i] for i in idx), r)
                proj[q] = tm if q not in proj else _join_times(proj[q], tm)
            groups.append(("orbit", sorted(proj.items()), ms))

        def size(gr):
            kind, info, ms = gr
            if kind == "orbit":
                return len(info) if len(info) <= ORBIT_ENUM_MAX else None
            v = info
            c = v.count()
            return c if c <= ENUM_MAX and (v.exact or v.vals is not None) else None

        sizes = [size(gr) for gr in groups]
        while math.prod(s for s in sizes if s) > ROW_LIMIT:
            i = max(range(len(sizes)), key=lambda i: sizes[i] or 0)
            sizes[i] = None
        options: list[list[tuple[dict, dict]]] = []
        for (kind, info, ms), sz in zip(groups, sizes, strict=True):
            if sz is None:  # symbolic
                for m in ms:
                    self._wide(m, W[m].val)
                continue
            if kind == "orbit":
                if all(r == 0 for (_, r), _ in info):
                    options.append([({m: p[i] for i, m in enumerate(ms)}, {}, tm) for (p, _), tm in info])
                else:
                    ks = [self._coord(False, None, None) for _ in ms]
                    for m, k in zip(ms, ks, strict=True):
                        self.symform[m] = (ZERO, {k: ONE})
                    options.append([({}, {k: (p[i] - r, p[i] + r) for i, k in enumerate(ks)}, tm)
                                    for (p, r), tm in info])
            else:
                v, m = info, ms[0]
                if v.exact:
                    options.append([({m: x}, {}, None) for x in v.values()])
                else:  # balls
                    k = self._coord(False, None, None)
                    self.symform[m] = (ZERO, {k: ONE})
                    options.append([({}, {k: (x - v.rad, x + v.rad)}, None) for x in v.vals])
        rows = []
        for combo in itertools.product(*options):
            fixed, box, lat = {}, list(self.base_box), self.lat
            tlat = (1, 1)
            for f, b, tm in combo:
                fixed.update(f)
                for k, r in b.items():
                    box[k] = r
                if tm is not None and self.tau is not None:
                    tlat = _crt(tlat, tm)
                    if tlat is None:
                        break
            else:
                if self.tau is not None and tlat != (1, 1):  # orbit points pin the step number mod their period
                    off, st = Fraction(tlat[0]), Fraction(tlat[1])
                    lo, hi = box[self.tau]
                    if st == 0:
                        if not lo <= off <= hi:
                            continue
                        box[self.tau] = (off, off)
                    else:
                        lo, hi = _ceil_to(lo, off, st), _floor_to(hi, off, st)
                        if lo > hi:
                            continue
                        box[self.tau] = (lo, hi)
                        lat = list(self.lat)
                        lat[self.tau] = (off, st)
                rows.append(_Row(fixed, box, (), lat))
        return rows

    def run(self) -> Val | None:
        rows = self._rows()
        work = max(1, len(self.order))
        if len(rows) * work > WORK_LIMIT:
            return None
        self.budget = PIECE_LIMIT - len(rows)
        self.work = 0
        self._plan_memo()
        parts = []
        for row in rows:
            self.row_budget = max(64, PIECE_LIMIT // len(rows))  # pieces per row: no one row takes all
            parts.extend(self._eval(row, 0))
        if not parts:
            raise _Empty
        return v_join(parts)

    def _plan_memo(self):
        """Wires whose cone reaches no wide coordinate are memoised across rows, keyed by their members' values."""
        W, S = self.an.wires, set(self.members)
        wide_m = {m for m, (_, g) in self.symform.items() if any(self.wide[k] for k in g)}
        deps: dict[int, frozenset] = {}
        self.memo_deps: dict[int, tuple] = {}
        for x in self.order:
            d = frozenset().union(*(deps.get(a, frozenset([a]) if a in S else frozenset()) for a in W[x].args))
            deps[x] = d
            if not (d & wide_m):
                self.memo_deps[x] = tuple(sorted(d))
        self.memo: dict = {}

    def _memo_key(self, x: int, row: _Row):
        deps = self.memo_deps.get(x)
        if deps is None:
            return None
        key = [x]
        for m in deps:
            if m in row.fixed:
                key.append(row.fixed[m])
            else:
                key.append(tuple(row.box[k] for k in self.symform[m][1]))
        return tuple(key)

    # -- one row
    def _form(self, a: int, row: _Row, forms: dict):
        f = forms.get(a)
        if f is not None:
            return f
        if a in row.fixed:
            return (row.fixed[a], {}, ZERO, ZERO)
        s = self.symform.get(a)
        if s is not None:
            return (s[0], s[1], ZERO, ZERO)
        v = self.an.wires[a].val
        assert v.is_const, "cone leaf that is neither in the support nor constant"
        return (v.vals[0], {}, ZERO, ZERO)

    def _range(self, f, row: _Row):
        c, g, rlo, rhi = f
        lo, hi = _add(c, rlo), _add(c, rhi)
        box = row.box
        for k, v in g.items():
            a, b = box[k]
            if v < 0:
                a, b = b, a
            lo, hi = _add(lo, _mul(v, a)), _add(hi, _mul(v, b))
        if row.dirs and g:
            gw = {k: v for k, v in g.items() if self.wide[k]}
            for u, zlo, zhi, _ in row.dirs:  # g along one direction: bounded by its z-range
                a = _parallel(gw, u)
                if a is not None:
                    x, y = (zlo, zhi) if a > 0 else (zhi, zlo)
                    lo2, hi2 = _add(_add(c, rlo), _mul(a, x)), _add(_add(c, rhi), _mul(a, y))
                    for k, v in g.items():
                        if not self.wide[k]:
                            x, y = box[k] if v > 0 else box[k][::-1]
                            lo2, hi2 = _add(lo2, _mul(v, x)), _add(hi2, _mul(v, y))
                    lo, hi = max(lo, lo2), min(hi, hi2)
            # write g = sum_j alpha_j u_j + r over the row's directions (exactly, by elimination), so that
            # the part along the directions is bounded by their z-ranges and only r by the box
            r = dict(g)
            alpha: dict[int, Fraction] = {}
            for pc, e, t in self._echelon(row):
                if pc in r:
                    f = r[pc] / e[pc]
                    for k, v in e.items():
                        r[k] = r.get(k, ZERO) - f * v
                    for j, tv in t.items():
                        alpha[j] = alpha.get(j, ZERO) + f * tv
            if alpha:
                lo2, hi2 = _add(c, rlo), _add(c, rhi)
                for j, a in alpha.items():
                    if a == 0:
                        continue
                    _, zlo, zhi, _ = row.dirs[j]
                    x, y = (zlo, zhi) if a > 0 else (zhi, zlo)
                    lo2, hi2 = _add(lo2, _mul(a, x)), _add(hi2, _mul(a, y))
                for k, v in r.items():
                    if v != 0:
                        x, y = box[k] if v > 0 else box[k][::-1]
                        lo2, hi2 = _add(lo2, _mul(v, x)), _add(hi2, _mul(v, y))
                lo, hi = max(lo, lo2), min(hi, hi2)
        return lo, hi

    def _echelon(self, row: _Row):
        """The row's directions in reduced echelon form: (pivot, e, t) with e = sum_j t_j u_j; pivots prefer
        coordinates whose box is unbounded, so that what is left after elimination is bounded by the box."""
        if row.ech is not None:
            return row.ech
        E: list[tuple[int, dict, dict]] = []
        for i, (u, _, _, _) in enumerate(row.dirs):
            e, t = dict(u), {i: ONE}
            for pc, e2, t2 in E:
                if e.get(pc, 0) != 0:
                    f = e[pc] / e2[pc]
                    for k, v in e2.items():
                        e[k] = e.get(k, ZERO) - f * v
                    for j, v in t2.items():
                        t[j] = t.get(j, ZERO) - f * v
            e = {k: v for k, v in e.items() if v != 0}
            if not e:
                continue
            pc = max(e, key=lambda k: (isinstance(row.box[k][0], float) or isinstance(row.box[k][1], float),
                                       abs(e[k]), -k))
            for idx, (pc2, e2, t2) in enumerate(E):
                if e2.get(pc, 0) != 0:
                    f = e2[pc] / e[pc]
                    ne = {k: e2.get(k, ZERO) - f * e.get(k, ZERO) for k in {*e2, *e}}
                    nt = {k: t2.get(k, ZERO) - f * t.get(k, ZERO) for k in {*t2, *t}}
                    E[idx] = (pc2, {k: v for k, v in ne.items() if v != 0}, nt)
            E.append((pc, e, t))
        row.ech = E
        return E

    def _eval(self, row: _Row, depth: int, settled: dict | None = None) -> list[Val]:
        """Parts of the target's value over one row; `settled`: forms valid on a larger region holding this
        row (their cones made no relaxation there), reused instead of recomputed."""
        W = self.an.wires
        forms: dict[int, tuple] = dict(settled) if settled else {}
        self._pending, self._splits, self._axis, self._dsplits = None, [], [], []
        self._loose: set[int] = set()  # wires whose form relaxed something (recomputed in pieces)
        loose = self._loose
        for x in self.order:
            if x in forms:
                continue
            key = self._memo_key(x, row)
            if key is not None:
                f = self.memo.get(key)
                if f is not None:
                    forms[x] = f
                    continue
            w = W[x]
            self.work += 1
            if w.kind == LIN:
                c, g, rlo, rhi = w.bias, {}, ZERO, ZERO
                for coef, a in zip(w.coefs, w.args, strict=True):
                    ac, ag, alo, ahi = self._form(a, row, forms)
                    c += coef * ac
                    for k, v in ag.items():
                        g[k] = g.get(k, ZERO) + coef * v
                    if alo != 0 or ahi != 0:
                        if coef < 0:
                            alo, ahi = ahi, alo
                        rlo, rhi = _add(rlo, _mul(coef, alo)), _add(rhi, _mul(coef, ahi))
                forms[x] = (c, {k: v for k, v in g.items() if v != 0}, rlo, rhi)
            elif w.kind == RELU:
                f = self._form(w.args[0], row, forms)
                forms[x] = self._relu(f, row)
                if forms[x][3] != 0 and f[3] == 0:  # relaxed here
                    loose.add(x)
            else:
                fu, fv = self._form(w.args[0], row, forms), self._form(w.args[1], row, forms)
                forms[x] = self._mul(fu, fv, w.args[0] == w.args[1], row)
                if forms[x][3] != 0 and fu[3] == 0 and fv[3] == 0:
                    loose.add(x)
            if any(a in loose for a in w.args):
                loose.add(x)
            if key is not None:
                self.memo[key] = forms[x]
        can_split = depth < MAX_DEPTH and min(self.budget, self.row_budget) > 0 and self.work < WORK_LIMIT
        if (self._splits or self._axis or self._dsplits) and can_split:
            pieces = self._split(row)
            if pieces is not None:
                keep = {x: f for x, f in forms.items() if x not in loose}
                out = []
                for p in pieces:
                    out.extend(self._eval(p, depth + 1, keep))
                return out
        try:
            return [self._extract(forms[self.target], row)]
        except _Empty:
            return []

    def _relu(self, f, row):
        c, g, rlo, rhi = f
        if not g and rlo == 0 and rhi == 0:
            return (max(c, ZERO), {}, ZERO, ZERO)
        lo, hi = self._range(f, row)
        if hi <= 0:
            return _ZF
        if lo >= 0:
            return f
        if rlo == 0 and rhi == 0 and all(self.wide[k] for k in g):
            if len(g) == 1:  # an axis-parallel kink: narrow that coordinate's box
                (k, v), = g.items()
                self._axis.append((k, -c / v))
                return (ZERO, {}, ZERO, hi)
            for i, (u, _, _, _) in enumerate(row.dirs):  # a kink along a direction the row already has
                alpha = _parallel(g, u)
                if alpha is not None:
                    self._dsplits.append((i, -c / alpha))
                    return (ZERO, {}, ZERO, hi)
            if self._pending is None and len(row.dirs) < MAX_DIRS:
                k0 = next(iter(g))
                self._pending = {k: v / g[k0] for k, v in g.items()}
            alpha = None if self._pending is None else _parallel(g, self._pending)
            if alpha is not None:
                self._splits.append(-c / alpha)
        return (ZERO, {}, ZERO, hi)

    def _mul(self, fu, fv, same, row):
        for a, b in ((fu, fv), (fv, fu)):
            c, g, rlo, rhi = a
            if not g and rlo == 0 and rhi == 0:
                if c == 0:
                    return _ZF
                bc, bg, blo, bhi = b
                if c < 0:
                    blo, bhi = bhi, blo
                return (c * bc, {k: c * v for k, v in bg.items()}, _mul(c, blo), _mul(c, bhi))
        ulo, uhi = self._range(fu, row)
        if same:
            lo, hi = _sq_range(ulo, uhi)
        else:
            vlo, vhi = self._range(fv, row)
            lo, hi = _imul(ulo, uhi, vlo, vhi)
        return (ZERO, {}, lo, hi)

    def _split(self, row: _Row):
        """Pieces of a row cut at the kinks found: along one coordinate, along one of the row's directions
        z = u . y, or along a new direction; None when nothing can be cut."""
        if self._axis:
            k = self._axis[0][0]
            lo, hi = row.box[k]
            pts = _fan(sorted({p for j, p in self._axis if j == k and lo < p < hi}))
            if pts:
                pieces = []
                for a, b in itertools.pairwise([lo, *pts, hi]):
                    if row.lat[k] is not None:
                        a, b = _ceil_to(a, *row.lat[k]), _floor_to(b, *row.lat[k])
                        if a > b:
                            continue
                    box = list(row.box)
                    box[k] = (a, b)
                    pieces.append(_Row(row.fixed, box, row.dirs, row.lat))
                self._spend(len(pieces))
                return pieces
        for i in sorted({i for i, _ in self._dsplits}):
            u, zlo, zhi, zlat = row.dirs[i]
            pts = _fan(sorted({p for j, p in self._dsplits if j == i and zlo < p < zhi}))
            if pts:
                pieces = []
                for a, b in self._cut(zlo, zhi, pts, zlat):
                    dirs = list(row.dirs)
                    dirs[i] = (u, a, b, zlat)
                    pieces.append(_Row(row.fixed, row.box, tuple(dirs), row.lat))
                self._spend(len(pieces))
                return pieces
        u = self._pending
        if u is None:
            return None
        zlo = zhi = ZERO
        for k, v in u.items():
            a, b = row.box[k] if v > 0 else row.box[k][::-1]
            zlo, zhi = _add(zlo, _mul(v, a)), _add(zhi, _mul(v, b))
        lats = [row.lat[k] for k in u]
        zlat = None
        if all(lt is not None for lt in lats):
            zlat = (sum((v * lt[0] for v, lt in zip(u.values(), lats, strict=True)), ZERO),
                    reduce(_gcd, (abs(v) * lt[1] for v, lt in zip(u.values(), lats, strict=True)), ZERO))
            if zlat[1] == 0:
                zlat = None
        pts = _fan(sorted({p for p in self._splits if zlo < p < zhi}))
        pieces = [_Row(row.fixed, row.box, (*row.dirs, (u, a, b, zlat)), row.lat)
                  for a, b in self._cut(zlo, zhi, pts, zlat)]
        self._spend(len(pieces))
        return pieces

    def _spend(self, n: int):
        self.budget -= n
        self.row_budget -= n

    @staticmethod
    def _cut(lo, hi, pts, lat):
        """[lo, hi] cut at pts into closed pieces, each shrunk to the lattice (empty pieces dropped)."""
        out = []
        for a, b in itertools.pairwise([lo, *pts, hi]):
            if lat is not None:
                a, b = _ceil_to(a, *lat), _floor_to(b, *lat)
                if a > b:
                    continue
            out.append((a, b))
        return out

    def _extract(self, f, row: _Row) -> Val:
        c, g, rlo, rhi = f
        if not g and rlo == 0 and rhi == 0:
            return Val.const(c)
        lo, hi = self._range(f, row)
        if rlo == 0 and rhi == 0 and all(self.wide[k] for k in g):
            for u, _, _, zlat in row.dirs:
                alpha = _parallel(g, u) if zlat is not None else None
                if alpha is not None:
                    return Val.lat(c + alpha * zlat[0], abs(alpha) * zlat[1], lo, hi)
            lats = [row.lat[k] for k in g]
            if all(lt is not None for lt in lats):
                off = c + sum((v * lt[0] for v, lt in zip(g.values(), lats, strict=True)), ZERO)
                step = reduce(_gcd, (abs(v) * lt[1] for v, lt in zip(g.values(), lats, strict=True)), ZERO)
                return Val.lat(off, step, lo, hi)
            return Val.ival(lo, hi)
        if not isinstance(lo, float) and not isinstance(hi, float) and \
                hi - lo <= BALL_REL * max(1, abs(lo), abs(hi)):
            return Val.of_set([(lo + hi) / 2], (hi - lo) / 2)
        return Val.ival(lo, hi)
