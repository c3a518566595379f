"""The driver: `analyze` builds wires node by node, analyses states and refines correlated wires."""

from __future__ import annotations

import heapq
from collections import Counter
from types import MappingProxyType

from lsrl.analysis.ranges import limits
from lsrl.analysis.ranges.arith import ZERO, Q, _add, _Empty, _ext, _fmt, _frac, _gcd, _mul
from lsrl.analysis.ranges.limits import (
    DEFAULT_MAX_LEN,
    EAGER_SUMSET,
    MAX_EXPANSIONS,
    MAX_SUPPORT,
    QUIET_ORBIT_MAX,
)
from lsrl.analysis.ranges.results import NodeRange, Ranges
from lsrl.analysis.ranges.states import (
    _blocks,
    _box_iteration,
    _congruence,
    _exact_invariant,
    _norm_bound,
    _orbit_exact,
    _orbit_float,
)
from lsrl.analysis.ranges.support import _Enumeration
from lsrl.analysis.ranges.values import Val, v_lin, v_meet, v_mul, v_relu, v_sq
from lsrl.analysis.ranges.wires import IN, LIN, MUL, RELU, STATE, STATELESS, _Wire
from lsrl.ir import graph as ir
from lsrl.program import Domain


def analyze(graph: ir.Graph, domain: Domain | None, max_len: int = DEFAULT_MAX_LEN,
            known: dict[int, NodeRange] | None = None) -> Ranges:
    """Sound ranges of every node of `graph` for inputs in `domain` (per component) and lengths <= max_len.

    `known`: ranges already proven for some nodes (a rewritten graph's kept nodes, from the analysis of the
    graph before the rewrite). They are taken as given, each component a source of its own: correlations
    through them are lost (enumerations over them stay sound, as over independent values), and no work is
    spent re-deriving them."""
    if max_len < 1:
        raise ValueError("max_len must be at least 1")
    return _Analysis(graph, domain, int(max_len), known or {}).run()


class _Analysis:
    def __init__(self, graph: ir.Graph, domain: Domain | None, max_len: int, known: dict[int, NodeRange]):
        self.g, self.domain, self.L, self.known = graph, domain, max_len, known
        self.wires: list[_Wire] = []
        self.alias: dict[tuple[int, int], int] = {}
        self.orbits: dict[tuple, list] = {}
        self.notes: dict[int, str] = {}
        self.sums: dict[int, list[int]] = {}  # wire -> refined linear wires (sums) having it as an operand
        self.refined: dict[tuple, int] = {}  # a refined linear wire by its direction (see _direction)
        self.memos: dict[tuple, dict] = {}  # support members -> memoised forms (see _Enumeration._plan_memo)
        self.quiet: dict[tuple[int, int], tuple[int, Q]] = {}  # see Ranges.quiet
        self._quiet_seen: set[tuple[int, int]] = set()  # (argument wire, K) whose ReLUs were looked at

    # -- driver
    def run(self) -> Ranges:
        for pos, node in enumerate(self.g.nodes):
            op = node.op
            if node.id in self.known:
                self._known(pos, node, self.known[node.id])
            elif isinstance(op, ir.Input):
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
        nodes, orbits = {}, {}
        for n in self.g.nodes:
            ws = [self.wires[self.alias[(n.id, i)]] for i in range(n.dim)]
            nodes[n.id] = NodeRange(n.id, tuple(w.val for w in ws), tuple(w.flt for w in ws))
        for key, pts in self.orbits.items():
            orbits.setdefault(key[1], []).append((key[2], pts))
        return Ranges(self.g, self.L, self.domain, MappingProxyType(nodes), MappingProxyType(dict(self.notes)),
                      MappingProxyType({k: tuple(v) for k, v in orbits.items()}), MappingProxyType(dict(self.quiet)))

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

    def _known(self, pos, node, r: NodeRange):
        for i in range(node.dim):
            w = _Wire(IN, node.id, i, pos, flt=r.float_derived[i])
            w.val = r.vals[i]
            if not w.val.is_const:
                w.src = frozenset([("known", node.id, i)])
            self.alias[(node.id, i)] = self._new(w)

    def _linear_row(self, node, i, pos, mats, args, bias) -> int:
        acc: dict[int, Q] = {}
        flt = isinstance(bias, float) and bias != 0
        for m, a in zip(mats, args, strict=True):
            for j, coef in m.sparse_rows[i]:
                w = self.alias[(a, j)]
                acc[w] = acc.get(w, ZERO) + _frac(coef)
                flt = flt or isinstance(coef, float) or self.wires[w].flt
        bias = self._reuse_sums(acc, _frac(bias))
        items = [(w, c) for w, c in acc.items() if c != 0]
        return self._stateless(_Wire(LIN, node.id, i, pos, tuple(w for w, _ in items), tuple(c for _, c in items),
                                     bias, flt))

    def _reuse_sums(self, acc: dict[int, Q], bias: Q) -> Q:
        """Where an earlier refined sum u = sum_k d_k w_k + e appears in `acc` as alpha * d_k on all its w_k,
        beside other terms independent of u, read alpha * u instead (acc becomes alpha * u + the rest,
        bias - alpha * e). Fusion substitutes a shared sum into every reader; this recovers it, so that its
        refined value (e.g. a one-hot selection proven to stay in {0..9}) is reused instead of re-derived by a
        fresh enumeration in each reader."""
        W = self.wires
        for u in sorted({u for w in acc for u in self.sums.get(w, ())}, key=lambda u: -len(W[u].args)):
            wu = W[u]
            if not all(a in acc for a in wu.args):
                continue
            alpha = acc[wu.args[0]] / wu.coefs[0]
            others = [a for a in acc if a not in wu.args]
            rest = frozenset().union(*(W[a].src for a in others))
            # only beside other terms (a bare rescaling of u gains nothing and would hide u's operands from
            # later support expansion) that are independent of u (else enumerating them jointly is tighter)
            if others and _independent(rest, wu.src) and all(acc[a] == alpha * c
                                                             for a, c in zip(wu.args, wu.coefs, strict=True)):
                for a in wu.args:
                    del acc[a]
                acc[u] = acc.get(u, ZERO) + alpha
                bias -= alpha * wu.bias
        return bias

    def _stateless(self, w: _Wire) -> int:
        idx = self._new(w)
        W = self.wires
        terms = [(c, W[a].val) for c, a in zip(w.coefs, w.args, strict=True)] if w.kind == LIN else []
        if w.kind == LIN:  # a large sumset only if no enumeration refines the sum (below)
            val = v_lin(terms, w.bias, EAGER_SUMSET)
        elif w.kind == RELU:
            val = v_relu(W[w.args[0]].val)
        else:
            a, b = w.args
            val = v_sq(W[a].val) if a == b else v_mul(W[a].val, W[b].val)
        w.val = val
        gate = w.kind == MUL and any(W[a].val.boolean() for a in w.args)  # {0} u the other: already tight
        if not val.is_const and not val.boolean() and not gate:
            e = self._rescaled_sum(w) if w.kind == LIN else None
            if e is None:
                e = self._enumerate(idx)
                if e is not None and w.kind == LIN:
                    self.refined[_direction(w)] = idx
            if e is not None:
                w.val = val = v_meet(val, e)
                if w.kind == LIN and len(w.args) > 1:
                    for a in w.args:
                        self.sums.setdefault(a, []).append(idx)
            elif w.kind == LIN:
                w.val = val = v_lin(terms, w.bias)
        if not val.is_const:
            w.src = frozenset().union(*(W[a].src for a in w.args if not W[a].val.is_const))
        return idx

    def _rescaled_sum(self, w: _Wire) -> Val | None:
        """An earlier refined sum over the same wires with proportional coefficients (another bias or scale,
        e.g. the two ramps of a step) gives this one's range by the same affine map: the enumeration over
        their common support would only repeat itself."""
        j = self.refined.get(_direction(w))
        if j is None:
            return None
        u = self.wires[j]
        alpha = w.coefs[0] / u.coefs[0]
        return v_lin([(alpha, u.val)], w.bias - alpha * u.bias)

    # -- states
    def _state(self, pos, node):
        op: ir.LinState = node.op
        d = node.dim
        A = [[ZERO] * d for _ in range(d)]  # dense, filled from the nonzeros (a wide A is mostly zeros)
        for i, row in enumerate(op.A.sparse_rows):
            for j, x in row:
                A[i][j] = _frac(x)
        init = [_frac(x) for x in op.init.data]
        flt = any(isinstance(x, float) for row in op.A.sparse_rows for _, x in row) or \
            any(isinstance(x, float) and x != 0 for c in (op.init, op.bias) for x in c.data)
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
        for blk in _blocks(op.A.sparse_rows):
            Ab = [[A[i][j] for j in blk] for i in blk]
            dv = [dvals[i] for i in blk]
            s0 = [init[i] for i in blk]
            if all(v.is_const for v in dv):
                res, note = self._autonomous(node, blk, Ab, [v.vals[0] for v in dv], s0)
            else:
                res, note = self._driven(node, blk, Ab, dv, s0, drives[blk[0]])
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

    def _driven(self, node, blk, Ab, dv, s0, drive: int | None = None):
        """`drive`: the first component's drive wire (an accumulator's drive may fall quiet after some step)."""
        L, n = self.L, len(blk)
        if n == 1 and Ab[0][0] == 1:  # an accumulator: s_t = s0 + sum of its drives up to step t
            v = dv[0]
            quiet = self._quiet_after(drive) if drive is not None else None
            K = L if quiet is None else min(quiet, L)  # steps whose drive may be nonzero
            if K == 0:
                return [(Val.const(s0[0]), None, None)], "accumulator (its drive is always 0)"
            if K < L:
                self._quiet_relus(drive, K)
            lo = _add(s0[0], v.lo if v.lo >= 0 else _mul(Q(K), v.lo))
            hi = _add(s0[0], v.hi if v.hi <= 0 else _mul(Q(K), v.hi))
            lt = v.lattice()
            if lt is not None:
                od, sd = lt
                val = Val.lat(s0[0] + od, _gcd(sd, od) if K >= 2 else sd, lo, hi)
            else:
                val = Val.ival(lo, hi)
            return [(val, None, None)], "accumulator" + (f" (drive 0 after step {K})" if K < L else "")
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
                return S if (expanded or joint) and _size(S, W) <= MAX_SUPPORT else None
            self._open_latest(S, bad)
            expanded = True
        return None

    def _open_latest(self, S: set[int], among) -> None:
        """Replace the latest (topological order) of the members `among` in the support S by its operands."""
        m = max(among, key=lambda m: (self.wires[m].pos, m))
        S.discard(m)
        S |= self._ops(m)

    def _quiet_after(self, w: int) -> int | None:
        """The last step at which wire w (a drive read off the step counter) may be nonzero, or None: enumerated
        over a support that opens up every stateless member tied to the clock down to the step number."""
        W = self.wires
        if W[w].val.is_const or "time" not in W[w].src:
            return None
        S = self._clock_support(w)
        # an orbit among the members makes this one row per orbit point for every accumulator component
        # (tok2tok's 2T query slots at T = 128: 15 s): only short orbits are taken along
        if S is None or any(k[0] == "orbit" and len(self.orbits.get(k, ())) > QUIET_ORBIT_MAX
                            for m in S for k in W[m].src if k != "time"):
            return None
        try:
            return _Enumeration(self, w, S).quiet_after()
        except _Empty:
            return None

    def _quiet_relus(self, drive: int, K: int) -> None:
        """For each ReLU the quiet drive reads directly (or through a factor, when it is a product): its argument's
        range from step K + 1 on (enumerated with the step number restricted), recorded in self.quiet where it
        stays below 0."""
        W = self.wires
        kind = W[drive].kind
        if kind == MUL:  # a product is 0 where a factor is: look at the ReLUs of each
            for a in W[drive].args:
                if W[a].kind in (LIN, RELU):
                    self._quiet_relus(a, K)
            return
        for a in W[drive].args if kind == LIN else (drive,) if kind == RELU else ():
            if W[a].kind == MUL:
                self._quiet_relus(a, K)
            if W[a].kind != RELU or W[a].val.is_const:
                continue
            arg = W[a].args[0]
            S = self._clock_support(arg) if "time" in W[arg].src else None
            try:
                v = None if S is None else _Enumeration(self, arg, S).run(first_step=K + 1)
            except _Empty:  # no step after K reaches this ReLU's cone: nothing to claim
                v = None
            if v is not None and v.hi < 0:
                key = (W[a].node, W[a].comp)
                k0, m0 = self.quiet.get(key, (0, -v.hi))
                self.quiet[key] = (max(k0, K), min(m0, -v.hi))
                # the ReLUs this one's argument reads: a float ReLU is 0 only if the flags it reads are 0 in floats
                # too (a conditional's flag is itself a ReLU, quiet by then), so look at them as well
                if (arg, K) not in self._quiet_seen:
                    self._quiet_seen.add((arg, K))
                    self._quiet_relus(arg, K)

    def _clock_support(self, w: int) -> set[int] | None:
        """w's operands with every stateless member tied to the clock opened up, down to the step number and
        orbit components (None past MAX_SUPPORT)."""
        W = self.wires

        def clocked(m: int) -> bool:
            return W[m].kind in STATELESS and _clocked(W[m].src)

        S = self._ops(w)
        size = _Size(W, S)
        latest = [(-W[m].pos, -m) for m in S if clocked(m)]  # a heap: the latest member first, as _open_latest
        heapq.heapify(latest)
        for _ in range(MAX_EXPANSIONS):
            if not latest:
                return S
            m = -heapq.heappop(latest)[1]  # (opening adds earlier members only, so none comes back)
            S.discard(m)
            size.remove(m)
            for o in self._ops(m) - S:
                S.add(o)
                size.add(o)
                if clocked(o):
                    heapq.heappush(latest, (-W[o].pos, -o))
            if size.value > MAX_SUPPORT:
                return None
        return None

    def _enumerate(self, w: int):
        S = self._support(w)
        if S is None:
            return None
        try:
            return _Enumeration(self, w, S).run()
        except _Empty:
            if limits._DEBUG:
                raise
            return None


def _size(S: set[int], W) -> int:
    """A support's size: the components of one orbit count once (they are enumerated jointly, as its points)."""
    return _Size(W, S).value


class _Size:
    """A support's size (`_size`), kept up to date as members come and go (a support opened one at a time)."""

    def __init__(self, W, S: set[int]):
        self.W, self.orbits, self.plain = W, Counter(), 0
        for m in S:
            self.add(m)

    def _orbits(self, m: int) -> list:
        return [k for k in self.W[m].src if k[0] == "orbit"]

    def add(self, m: int) -> None:
        ks = self._orbits(m)
        self.orbits.update(ks)
        self.plain += not ks

    def remove(self, m: int) -> None:
        ks = self._orbits(m)
        self.orbits.subtract(ks)
        self.plain -= not ks

    @property
    def value(self) -> int:
        return sum(1 for c in self.orbits.values() if c > 0) + self.plain


def _direction(w: _Wire) -> tuple:
    """A linear wire's operands with its coefficients scaled to make the first 1 (equal for proportional sums)."""
    c0 = w.coefs[0]
    return w.args, tuple(c / c0 for c in w.coefs)


def _independent(src1: frozenset, src2: frozenset) -> bool:
    """Whether values with these sources vary independently: no shared source, and not both tied to the
    step number (the step counter and every orbit of an autonomous state move together)."""
    return not (src1 & src2) and not (_clocked(src1) and _clocked(src2))


def _clocked(src: frozenset) -> bool:
    return any(k == "time" or k[0] == "orbit" for k in src)
