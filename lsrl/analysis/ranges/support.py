"""Exact re-evaluation of one wire by enumeration over a support (a cut of its cone), with ReLU splitting."""

from __future__ import annotations

import itertools
import math
from functools import reduce
from typing import TYPE_CHECKING

from lsrl.analysis.ranges.arith import (
    ONE,
    ZERO,
    Q,
    _add,
    _ceil_to,
    _connected,
    _Empty,
    _floor_to,
    _gcd,
    _imul,
    _mul,
)
from lsrl.analysis.ranges.by_value import cone_values
from lsrl.analysis.ranges.limits import (
    BALL_REL,
    ENUM_MAX,
    MAX_DEPTH,
    MAX_DIRS,
    ORBIT_ENUM_MAX,
    PIECE_LIMIT,
    PLAN_LIMIT,
    ROW_LIMIT,
    SPLIT_FANOUT,
    WORK_LIMIT,
)
from lsrl.analysis.ranges.values import Val, _sq_range, v_join, v_lin
from lsrl.analysis.ranges.wires import LIN, RELU, STATE, _Wire
from lsrl.cached import cached

if TYPE_CHECKING:
    from lsrl.analysis.ranges.analysis import _Analysis


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
        self.tau_parts: list | None = None  # (value, last step of its tau box) per piece, for quiet_after

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
        time_ms, orbit_ms, singles = [], {}, []
        for m in self.members:
            w = W[m]
            if w.kind == STATE and w.key == "time":
                time_ms.append(m)
            elif w.kind == STATE and w.key in an.orbits:
                orbit_ms.setdefault(w.key, []).append(m)
            else:
                singles.append(m)
        for lump in self._lumps(singles):
            ms = [m for m, _ in lump]
            if len(ms) == 1:
                groups.append(("single", W[ms[0]].val, ms))
            else:
                groups.append(("lump", v_lin([(s, W[m].val) for m, s in lump], ZERO), ms))
        self.tau = None
        if time_ms:
            k = self.tau = self._coord(True, (ONE, ONE), (ONE, Q(an.L)))
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
                if kind == "lump":  # one coordinate for the combination, carried by the first member
                    self._wide(ms[0], info)
                    self.symform.update((m, (ZERO, {})) for m in ms[1:])
                else:
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
            elif kind == "lump":  # the first member carries the combination, the others 0: readers see it
                rest = {m: ZERO for m in ms[1:]}
                options.append([({ms[0]: x, **rest}, {}, None) for x in info.values()])
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
                    off, st = Q(tlat[0]), Q(tlat[1])
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

    def _lumps(self, ms: list[int]) -> list[list[tuple[int, Q]]]:
        """Members (exact value sets or lattices) the cone reads only through sums, with coefficients in a fixed
        ratio across those sums, grouped as [(member, scale)]: the cone sees only their combination
        z = sum scale_m * m (first scale 1), whose values (a sumset) are enumerated, or kept as one symbolic
        coordinate, instead of every combination (8 flags read only through their count: 9 rows, not 256;
        x - q inside a bump: one coordinate with 4 kinks, not 10 rows of them)."""
        W = self.an.wires
        readers: dict[int, list] = {m: [] for m in ms}
        for x in self.order:
            w = W[x]
            for i, a in enumerate(w.args):
                if a in readers:
                    readers[a].append((x, w.coefs[i] if w.kind == LIN else None))
        lumps: dict = {}
        for m in ms:
            sig = readers[m]
            if W[m].val.exact and sig and all(c is not None for _, c in sig):
                s = sig[0][1]  # reader x sees c_x * m = (c_x / s) * (s * m): the key, and this member's scale
                lumps.setdefault(tuple((x, c / s) for x, c in sig), []).append((m, s))
            else:
                lumps[("alone", m)] = [(m, ONE)]
        return [[(m, s / g[0][1]) for m, s in g] for g in lumps.values()]

    def _from_step(self, row: _Row, first: int) -> bool:
        """Restrict the row's step box to steps >= first (on its step lattice); False when nothing is left."""
        lo, hi = row.box[self.tau]
        lat = row.lat[self.tau]
        lo = max(lo, Q(first))
        if lat is not None:
            lo = _ceil_to(lo, *lat)
        if lo > hi:
            return False
        row.box = list(row.box)
        row.box[self.tau] = (lo, hi)
        return True

    def quiet_after(self) -> int | None:
        """The last step number at which the target may be nonzero (0: never), from the pieces of an enumeration
        over a support holding the step number; None when the support has no step number or a budget ran out
        before the pieces were exact. Every piece whose value is not exactly 0 counts with its whole tau box (a
        superset of its steps), and a relaxed piece is not exactly 0: the answer can only be too late, not too
        early."""
        rows = self._rows()
        if self.tau is None or not rows:
            return None
        self.tau_parts = []
        if self._parts(rows) is None:
            return None
        busy = [hi for v, hi in self.tau_parts if not (v.is_const and v.vals[0] == 0)]
        return int(max(busy, default=0))

    def run(self, first_step: int | None = None) -> Val | None:
        """The target's range; with `first_step`, over the steps from that one on only (the support must hold
        the step number; rows left with no step are dropped)."""
        split = self._split_sum() if first_step is None else None
        if split is not None:
            return split
        by_value = self._by_value() if first_step is None else None
        if by_value is not None:
            return by_value
        rows = self._rows()
        if first_step is not None:
            if self.tau is None:
                return None
            rows = [r for r in rows if self._from_step(r, first_step)]
        parts = self._parts(rows)
        if parts is None:
            return None
        if not parts:
            raise _Empty
        return v_join(parts)

    def _by_value(self) -> Val | None:
        """Over a single support member with a known value set: the exact value set, every value at once
        (`by_value.cone_values`); None where that does not apply."""
        return cone_values(self.an.wires, self.members, self.order, self.target)

    def _parts(self, rows: list[_Row]) -> list[Val] | None:
        """The target's value over each row's pieces, or None when the rows would take more than PLAN_LIMIT."""
        if len(rows) * max(1, len(self.order)) > PLAN_LIMIT:
            return None
        self.budget = PIECE_LIMIT - len(rows)
        self.work = 0
        self._plan_memo()
        parts = []
        for row in rows:
            self.row_budget = max(64, PIECE_LIMIT // len(rows))  # pieces per row: no one row takes all
            parts.extend(self._eval(row, 0))
        return parts

    @cached  # both the split and the memo plan ask
    def _member_deps(self) -> dict[int, frozenset]:
        """Per cone wire and support member, the support members its value depends on (constants: none)."""
        W = self.an.wires
        deps = {m: frozenset([m]) for m in self.members}
        for x in self.order:
            deps[x] = frozenset().union(*(deps.get(a, frozenset()) for a in W[x].args))
        return deps

    def _split_sum(self) -> Val | None:
        """A sum whose terms fall into groups over disjoint support members is the sumset of the groups'
        ranges: each group is enumerated on its own (its rows, not the product of all groups' rows).

        Rows combine members freely, except that the components of one orbit take its points jointly, and
        with the step number among the members every counter and orbit point is tied to it (one group). The
        groups become temporary partial-sum wires."""
        an, W = self.an, self.an.wires
        t = W[self.target]
        if t.kind != LIN or len(t.args) < 2:
            return None
        deps = self._member_deps
        clock = {m for m in self.members if W[m].kind == STATE and (W[m].key == "time" or W[m].key in an.orbits)}
        tied = any(W[m].key == "time" for m in clock)
        # the components of one orbit take its points jointly; with the step number, every clocked member
        groups = _connected([[("clock" if tied else W[m].key) if m in clock else m
                              for m in deps.get(a, frozenset())]
                             for a in t.args])
        if len(groups) < 2:
            return None
        terms = []
        for ks in groups:
            args, coefs = tuple(t.args[k] for k in ks), tuple(t.coefs[k] for k in ks)
            S = set().union(*(deps.get(a, frozenset()) for a in args))
            if not S or (len(ks) == 1 and args[0] in self.members):  # constants, or a free member: own range
                terms += [(c, W[a].val) for a, c in zip(args, coefs, strict=True)]
                continue
            wire = _Wire(LIN, t.node, t.comp, t.pos, args, coefs, ZERO, t.flt)
            val = an._rescaled_sum(wire)  # the part may be an earlier refined sum (e.g. a switch itself)
            if val is None:
                part = an._new(wire)
                try:
                    val = _Enumeration(an, part, S).run()
                finally:
                    W.pop()
            if val is None:
                return None
            terms.append((ONE, val))
        return v_lin(terms, t.bias)

    def _plan_memo(self):
        """Wires whose cone reaches no wide coordinate are memoised across rows, keyed by their members' values.

        The memo is shared by every enumeration over the same support: those build the same rows and
        coordinates, and a wire's form depends only on its cone up to the support (e.g. each switch built on
        one counter's orbit re-reads the same one-hot wires). The target is left out: a split sum's
        temporary part wire gives its index back afterwards."""
        wide_m = {m for m, (_, g) in self.symform.items() if any(self.wide[k] for k in g)}
        deps = self._member_deps
        self.memo_deps = {x: tuple(sorted(deps[x])) for x in self.order if not (deps[x] & wide_m) and x != self.target}
        self.memo: dict = self.an.memos.setdefault(tuple(self.members), {})

    def _member_keys(self, row: _Row) -> dict:
        """Per support member, what a memoised form depends on in this row: its value, or its box."""
        return {m: row.fixed[m] if m in row.fixed else tuple(row.box[k] for k in self.symform.get(m, (0, {}))[1])
                for m in self.members}

    def _memo_key(self, x: int, member_keys: dict):
        deps = self.memo_deps.get(x)
        return None if deps is None else (x, *(member_keys[m] for m in deps))

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
            alpha: dict[int, Q] = {}
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
        member_keys = self._member_keys(row) if self.memo_deps else {}
        for x in self.order:
            if x in forms:
                continue
            key = self._memo_key(x, member_keys)
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
                    ac, ag, alo, ahi = forms.get(a) or self._form(a, row, forms)
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
            if loose and not loose.isdisjoint(w.args):
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
            part = self._extract(forms[self.target], row)
        except _Empty:
            return []
        if self.tau_parts is not None:
            self.tau_parts.append((part, row.box[self.tau][1]))
        return [part]

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
