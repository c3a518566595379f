"""Reads of ReLU units in the error analysis (lsrl.guarantee.propagate): hidden ReLUs of an MLP stage whose
arguments are parallel rows of E form a group, w_k = lam_k t + b_k for one scalar t, read jointly per pattern of
on / off / hull members that t's exact values produce; a read errs by at most its swing whatever t's error; and
members of several groups of one stage read in one sum take their argument moves through the stage input
together. `docs/guarantees.md` has the math."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from lsrl.cached import cached
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.rational import RatArray

if TYPE_CHECKING:
    from lsrl.guarantee.propagate import StageErrors


@dataclass(frozen=True)
class Unresolved:
    """A step (parallel ReLUs of one MLP stage, kinks `width` apart along their common input t) whose input
    may sit at a kink and is known only to within `error` >= width / 2: rounding decides its output there."""

    node: int  # the ReLU node of its first unit
    error: float  # bound of t's error (its own and each unit's argument rounding, in t's units)
    width: float  # the smallest distance between two of its kinks


@dataclass
class Group:
    """ReLU units of one MLP stage whose arguments are w_k = lam_k t + b_k for one scalar t (parallel rows of
    E). At an exact t, unit k is off (w_k <= -width_k: exactly 0 after perturbation), on (w_k >= width_k: its
    error is lam_k dt + rho_k) or in its hull band (|w_k| < width_k: theta_k (lam_k dt + rho_k) with theta_k
    in its slope range `theta`, plus its surrogate's error), width_k = |lam_k| e_t + r_k + band_k. Reading
    several members in one linear combination then keeps the cancellation of on units (a step
    relu(k t + 1) - relu(k t) is flat off its kinks)."""

    e_t: float  # bound of |dt|
    lam: list[Fraction]
    bias: list[Fraction]
    r: np.ndarray  # per member: its argument's own rounding
    band: np.ndarray  # per member: surrogate band (0 for an exact ReLU)
    surr: np.ndarray  # per member: surrogate error inside the band
    shift: np.ndarray  # per member: the switch sits at w = -shift (0 for an exact ReLU)
    tvals: list[Fraction] | None  # the exact values of t, up to t_rad (None: only the interval)
    t_rad: float = 0.0
    t_lo: float = -math.inf
    t_hi: float = math.inf
    owners: tuple[tuple[int, int], ...] = ()  # per member: its (ReLU node, component)
    drift: np.ndarray | float = 0.0  # per member: what it is in floats when off (StageErrors.off_drift)
    slope: tuple[float, float] = (0.0, 1.0)  # the range of an unshifted member's slope (StageErrors.relu_slope)
    E: np.ndarray | None = None  # per member: its argument's row over the stage input (w_k = E_k x + b_k)
    source: Errors | None = None  # the stage input's errors

    def arg_error(self, m: int) -> float:
        """A bound of member m's argument error."""
        return abs(float(self.lam[m])) * self.e_t + float(self.r[m])

    def unresolved(self) -> Unresolved | None:
        """This step, if rounding decides its output near a kink (see Unresolved); None if it is resolved."""
        lam = self.lam_f
        kinks = np.unique([float(-b / a) for a, b in zip(self.lam, self.bias, strict=True)] - self.shift / lam)
        if len(kinks) < 2 or not any(hull.any() for _, hull, _ in self.patterns):
            return None
        width = float(np.diff(kinks).min())
        error = self.e_t + float(((self.r + self.band) / np.abs(lam)).max())
        return Unresolved(self.owners[0][0], error, width) if error >= width / 2 else None

    @cached  # (these three: computed once, readers ask for them many times)
    def lam_f(self) -> np.ndarray:
        return np.array([float(v) for v in self.lam])

    @cached
    def patterns(self) -> list[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        """The (on, hull, near) masks over members that the exact values of t can produce; `near`: in the hull
        band at a nonzero exact argument, where a surrogate's own error adds (at an exact 0 it does not: the
        surrogate's output lies between 0 and its argument)."""
        on, hull, near = self.masks
        return list(zip(on, hull, near, strict=True))

    @cached
    def masks(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """`patterns` as three boolean arrays, one row per pattern, for reads vectorised over patterns."""
        lam = self.lam_f
        width = np.abs(lam) * self.e_t + self.r + self.band
        if self.tvals is None:  # an interval: members whose kink may be near t are hull, the rest one side
            kinks = np.array([float(-b / a) for a, b in zip(self.lam, self.bias, strict=True)]) - self.shift / lam
            reach = width / np.abs(lam)
            hull = (kinks >= self.t_lo - reach) & (kinks <= self.t_hi + reach)
            side = np.where(lam > 0, self.t_lo > kinks, self.t_hi < kinks)
            return (side & ~hull)[None, :], hull[None, :], hull[None, :]
        w = affine_floats(self.lam, self.bias, self.tvals)  # per exact t (rows), per member
        hull = np.abs(w + self.shift) <= width + np.abs(lam) * self.t_rad
        on = (w + self.shift > 0) & ~hull  # (an exact 0 past a shifted switch is on: its error passes)
        near = hull & (np.abs(w) > 0) if self.t_rad == 0 else hull
        _, first = np.unique(np.hstack([on, hull, near]), axis=0, return_index=True)
        keep = np.sort(first)  # each distinct pattern once, in the order the values of t first produce it
        return on[keep], hull[keep], near[keep]

    @cached
    def _masks_t(self) -> tuple[np.ndarray, np.ndarray]:
        """The on and hull masks transposed (a row per member), as floats for matrix products."""
        return self.masks[0].T.astype(float), self.masks[1].T.astype(float)

    @cached
    def theta(self) -> tuple[np.ndarray, np.ndarray]:
        """Per member: the range of the slope at which it passes a move of its argument in its hull band: [0, 1]
        for an exact ReLU (its output moves between 0 and its argument's move), the surrogate's slope range for
        a surrogate switching at 0, and [-1, 1] for a shifted switch (its error is charged in `surr`)."""
        n = len(self.lam)
        if not self.band.any():
            return np.zeros(n), np.ones(n)
        shifted = self.shift > 0
        return np.where(shifted, -1.0, self.slope[0]), np.where(shifted, 1.0, self.slope[1])

    @cached
    def steep(self) -> np.ndarray:
        """Per member: the largest |slope| in its range (`theta`)."""
        return np.maximum(-self.theta[0], self.theta[1])

    def own_errors(self, mem: list[int], on, hull, near) -> np.ndarray:
        """For members `mem` in one pattern (or in each row of pattern masks): each one's error apart from its
        share of lam dt (its argument's rounding where on or in the hull, at the hull's slope; a surrogate's error
        where near; its drift where off)."""
        drift = np.broadcast_to(self.drift, (len(self.lam),))[mem]
        r = np.where(on, self.r[mem], np.where(hull, self.steep[mem] * self.r[mem], drift))
        return r + np.where(near, self.surr[mem], 0.0)

    def read(self, coef: np.ndarray, mem: list[int]) -> np.ndarray:
        """Per row of coef (over members `mem`): a bound of |coef @ (member errors)|. An on member passes
        lam_k dt; one in its hull band passes theta_k lam_k dt for some theta_k in its slope range (`theta`), so
        the worst dt share is at a vertex of the theta box. All patterns at once: one column each."""
        on, hull, near = self.masks
        on, hull, near = on[:, mem], hull[:, mem], near[:, mem]
        on_f, hull_f = self._masks_t[0][mem], self._masks_t[1][mem]
        cl = coef * self.lam_f[mem][None, :]
        lo_cl, hi_cl = cl * self.theta[0][mem], cl * self.theta[1][mem]
        base = cl @ on_f
        hi, lo = base + np.maximum(lo_cl, hi_cl) @ hull_f, base + np.minimum(lo_cl, hi_cl) @ hull_f
        dt = np.maximum(np.abs(hi), np.abs(lo))
        worst = (dt * self.e_t + np.abs(coef) @ self.own_errors(mem, on, hull, near).T).max(axis=1, initial=0.0)
        capped = (coef != 0) @ (self.shift[mem] > 0) == 0  # rows reading no shifted switch
        if worst.any() and capped.any():
            cap = self.swing(coef, mem) + np.abs(coef) @ (self.r + self.surr + self.drift)[mem]
            worst = np.where(capped, np.minimum(worst, cap), worst)
        return worst

    @cached
    def single(self) -> np.ndarray:
        """Per member: its read on its own with coefficient 1 (a read of c times one member is |c| times it)."""
        n = len(self.lam)
        return self.read(np.eye(n), list(range(n)))

    def swing(self, coef: np.ndarray, mem: list[int]) -> np.ndarray:
        """Per row of coef (over members `mem`): max - min of the exact R(t) = sum_j coef_j relu(lam_j t + b_j)
        over every t the computed input may take, [t_lo - e_t, t_hi + e_t] (inf where R is unbounded there). The
        computed read is within its members' own errors of R at the computed t, so it errs by at most this plus
        those, however large e_t: a step relu(k t + 1) - relu(k t) is off by at most its height."""
        lam, b = self.lam_f[mem], np.array([float(self.bias[m]) for m in mem])
        lo, hi = self.t_lo - self.e_t, self.t_hi + self.e_t
        pts = np.unique(np.concatenate([np.clip(-b / lam, lo, hi), [lo, hi]]))
        pts = pts[np.isfinite(pts)]
        if not pts.size or np.isnan([lo, hi]).any():
            return np.full(coef.shape[0], np.inf)
        terms = np.maximum(lam[:, None] * pts[None, :] + b[:, None], 0.0)
        vals = coef @ terms
        out = vals.max(axis=1) - vals.min(axis=1) + 1e-12 * (np.abs(coef) @ terms.max(axis=1))  # (float64 slack)
        for end, side in ((lo, lam < 0), (hi, lam > 0)):  # a ray to an infinite end: R must be flat along it
            if not np.isfinite(end):
                out = np.where(coef @ np.where(side, lam, 0.0) != 0, np.inf, out)
        return out

    @cached
    def member_bound(self) -> np.ndarray:
        """Each member's error bound on its own (when read without the others)."""
        on, hull, near = self.masks
        lam = np.abs(self.lam_f) * self.e_t
        own = self.own_errors(list(range(len(self.lam))), on, hull, near)
        return (own + np.where(on, lam, np.where(hull, self.steep * lam, 0.0))).max(axis=0, initial=0.0)


def affine_floats(lam: list[Fraction], bias: list[Fraction], ts: list[Fraction]) -> np.ndarray:
    """float(lam_k t + bias_k) for each t (rows) and k (columns), each correctly rounded from its exact value,
    as float(Fraction) gives it (RatArray.to_float over one common denominator)."""
    ld, bd, td = (math.lcm(*(v.denominator for v in vs)) for vs in (lam, bias, ts))
    ln = np.array([v.numerator * (ld // v.denominator) for v in lam], dtype=object)
    bn = np.array([v.numerator * (bd // v.denominator) for v in bias], dtype=object)
    tn = np.array([v.numerator * (td // v.denominator) for v in ts], dtype=object)
    num = np.outer(tn, ln) * bd + (bn * (ld * td))[None, :]  # w = num / (ld td bd)
    return RatArray.normal(num, ld * td * bd).to_float()


class Errors:
    """Error bounds of one vector's values: `err` per value, and for values that are ReLU units of a group
    (or copies of them) the group and member index, so readers can use the group's joint patterns."""

    def __init__(self, err: np.ndarray, tags: list[tuple[int, int] | None] | None = None, groups=None):
        self.err = err
        self.tags = tags if tags is not None else [None] * len(err)
        self.groups: dict[int, Group] = groups or {}

    @cached
    def _tagged(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(untagged columns mask, tagged column indices, their group ids)."""
        cols = [c for c, t in enumerate(self.tags) if t is not None]
        plain = np.ones(len(self.tags), dtype=bool)
        plain[cols] = False
        return plain, np.array(cols, dtype=np.intp), np.array([self.tags[c][0] for c in cols], dtype=np.intp)

    @cached
    def _column_reads(self) -> np.ndarray:
        """Per column: what a unit weight on it alone reads (its error, or a tagged member's read on its own,
        Group.single)."""
        plain, cols, _ = self._tagged
        out = np.where(plain, np.asarray(self.err, dtype=np.float64), 0.0)
        out[cols] = [self.groups[self.tags[c][0]].single[self.tags[c][1]] for c in cols.tolist()]
        return out

    def read(self, M: np.ndarray | Coeffs) -> np.ndarray:
        """Per row of M (signed, float64; or Coeffs, read by the nonzeros it knows): a bound of |M (x + dx) - M x|
        given these errors. A row reading one group member (a copy, a pass-through) takes that member's read on
        its own; the others read each group over the rows that read it (a wide stage has many groups, each read
        by a few rows). Sums run over the nonzeros: a wide stage's rows are mostly zeros."""
        dense = M.f64 if isinstance(M, Coeffs) else M
        if not dense.size:
            return np.zeros(dense.shape[0])
        rows, cols = M.nonzero if isinstance(M, Coeffs) else np.nonzero(dense)
        plain = self._tagged[0]
        tagged = ~plain[cols]
        count = np.bincount(rows[tagged], minlength=dense.shape[0])
        alone = ~tagged | (count[rows] == 1)  # a plain column, or the one member its row reads
        r, c = rows[alone], cols[alone]
        out = np.bincount(r, weights=np.abs(dense[r, c]) * self._column_reads[c], minlength=dense.shape[0]).astype(
            np.float64)  # (an empty bincount is int64)
        many = np.flatnonzero(count > 1)
        if many.size:
            out[many] += self._group_reads(dense[many])
        return out

    def _group_reads(self, M: np.ndarray) -> np.ndarray:
        """The tagged columns' share of read(M): each group read over its rows; rows reading members of several
        groups of one MLP stage also jointly (joint_read), keeping the smaller bound."""
        _, cols, col_group = self._tagged
        out = np.zeros(M.shape[0])
        by_group: dict[int, list[tuple[int, int]]] = {}
        for k in np.flatnonzero((M[:, cols] != 0).any(axis=0)):
            by_group.setdefault(int(col_group[k]), []).append((int(cols[k]), self.tags[cols[k]][1]))
        apart = {}
        for gid, gc in by_group.items():
            sub = M[:, [c for c, _ in gc]]
            rows = np.flatnonzero(sub.any(axis=1))
            apart[gid] = np.zeros(M.shape[0])
            apart[gid][rows] = self.groups[gid].read(sub[rows], [m for _, m in gc])
            out = out + apart[gid]
        by_source: dict[int, list[int]] = {}  # groups of one MLP stage, which a row may read jointly
        for gid in by_group:
            by_source.setdefault(id(self.groups[gid].source), []).append(gid)
        for gids in by_source.values():
            if len(gids) < 2:
                continue
            sep = sum(apart[g] for g in gids)
            for r in np.flatnonzero(sep > 0):
                parts = [(self.groups[g], [m for _, m in by_group[g]], M[r, [c for c, _ in by_group[g]]]) for g in gids]
                parts = [p for p in parts if p[2].any()]
                if len(parts) > 1:
                    out[r] -= sep[r] - min(sep[r], joint_read(parts))
        return out


def mlp_groups(st, facts, se: StageErrors, e_in: Errors, gid0: int):
    """Group the stage's hidden ReLUs by their argument direction; returns (groups, member of each hidden)."""
    graph = facts.ranges.graph
    e, Ef = st.e.rat.to_fractions(), st.E.f64
    band, surr, shift = se.relu_band if se.relu_band is not None else (np.zeros(len(e)),) * 3
    owner = {}
    for r, k in zip(*st.D.nonzero, strict=True):
        seg = next(s for s in st.out.segments if s.start <= r < s.start + s.dim)
        owner[int(k)] = (seg.node, int(r) - seg.start)
    keys: dict[tuple, list[int]] = {}
    lam = []
    for k, row in enumerate(st.E.sparse_rows):  # (its nonzeros: a wide stage's rows are mostly zeros)
        lead = Fraction(row[0][1]) if row else Fraction(1)
        lam.append(lead)
        keys.setdefault(tuple((j, Fraction(v) / lead) for j, v in row), []).append(k)
    groups, member = {}, {}
    for n, ks in enumerate(keys.values()):
        k0 = ks[0]
        canon = Ef[k0:k0 + 1] / float(lam[k0])
        e_t = float(e_in.read(canon)[0])
        relu, comp = owner[k0]
        arg = graph[relu].args[0]
        balls = facts.balls(arg, comp, limit=256)
        to_t = [lambda w, k=k: (w - Fraction(e[k])) / lam[k] for k in ks]
        if balls is not None:
            tvals = sorted({to_t[0](v) for v in balls[0]})
        elif (lat := facts.lattice(arg, comp)) is not None:  # the lattice points next to every member's kink
            off, step, wlo, whi = lat
            near = {wlo, whi}
            for k in ks:
                kink = lam[k0] * (-Fraction(e[k]) / lam[k]) + Fraction(e[k0])  # member k's kink, in arg-0 units
                j = math.floor((kink - off) / step)
                near.update(w for w in (off + j * step, off + (j + 1) * step) if wlo <= w <= whi)
            tvals = sorted({to_t[0](w) for w in near})
        else:
            tvals = None
        t_rad = 0.0 if balls is None else float(balls[1] / abs(lam[k0]))
        lo, hi = facts.lo(arg)[comp], facts.hi(arg)[comp]
        t_lo, t_hi = sorted(((lo - float(e[k0])) / float(lam[k0]), (hi - float(e[k0])) / float(lam[k0])))
        groups[gid0 + n] = Group(e_t, [lam[k] for k in ks], [Fraction(e[k]) for k in ks], se.inner[ks],
                                  band[ks], surr[ks], shift[ks], tvals, t_rad, t_lo, t_hi,
                                  tuple(owner[k] for k in ks), np.broadcast_to(se.off_drift, (len(e),))[ks],
                                  se.relu_slope, Ef[ks], e_in)
        for m, k in enumerate(ks):
            member[k] = (gid0 + n, m)
    return groups, member


def copy_rows(parts: list, bias=None) -> list[int | None]:
    """Per row of the block row [M_1 M_2 ...] (Coeffs `parts`): the column it copies (a single coefficient 1,
    no bias), else None. From the parts' nonzeros: no dense concatenation of wide stage matrices."""
    n = parts[0].shape[0]
    count, col, val, off = np.zeros(n, dtype=np.int64), np.zeros(n, dtype=np.int64), np.zeros(n), 0
    for M in parts:
        r, c = M.nonzero
        count += np.bincount(r, minlength=n)
        col[r], val[r] = c + off, M.f64[r, c]  # (a row with one nonzero keeps that one)
        off += M.shape[1]
    ok = (count == 1) & (val == 1)
    if bias is not None:
        ok &= bias.f64 == 0
    return [int(k) if y else None for k, y in zip(col.tolist(), ok.tolist(), strict=True)]


JOINT_CASES = 256  # per row: pattern combinations times slope vertices a joint read may enumerate


def joint_read(parts: list[tuple[Group, list[int], np.ndarray]]) -> float:
    """A bound of |sum_k c_k (member k's error)| over members of several groups of one MLP stage (`parts`: per
    group, members and coefficients), their argument moves taken through the stage input at once:
    sum_k c_k theta_k E_k dx plus own errors, theta_k 1 on, 0 off, in its slope range in its hull band. Reading
    the groups apart counts a move they share once per group: a conditional relu(a - off) - relu(-a - off)
    moves with an error in `off` once, not twice. Every combination of the groups' patterns is taken (a superset
    of the joint ones) and the bound is convex in theta, so its vertices suffice (inf past JOINT_CASES)."""
    options = []  # per group: (argument rows times coefficients, per member slope (lo, hi), own error) patterns
    for g, mem, coef in parts:
        lo, hi = g.theta[0][mem], g.theta[1][mem]
        pats: dict[tuple, float] = {}
        for on, hull, near in g.patterns:
            on_m, hull_m = on[mem], hull[mem]
            th = tuple(zip(np.where(on_m, 1.0, np.where(hull_m, lo, 0.0)).tolist(),
                           np.where(on_m, 1.0, np.where(hull_m, hi, 0.0)).tolist(), strict=True))
            own = float(np.abs(coef) @ g.own_errors(mem, on_m, hull_m, near[mem]))
            pats[th] = max(own, pats.get(th, 0.0))
        options.append([(coef[:, None] * g.E[mem], th, own) for th, own in pats.items()])
    cases = [([], [], 0.0)]  # per combination of patterns: (argument rows, slope ranges, own errors)
    for opts in options:
        cases = [(rows + [cE], th + list(t), own + o) for rows, th, own in cases for cE, t, o in opts]
        if len(cases) > JOINT_CASES:
            return math.inf
    if sum(2 ** sum(a != b for a, b in th) for _, th, _ in cases) > JOINT_CASES:
        return math.inf
    source = parts[0][0].source
    worst = 0.0
    for rows, th, own in cases:
        cE = np.vstack(rows)
        for vertex in _vertices(th):
            worst = max(worst, float(source.read((np.asarray(vertex) @ cE)[None, :])[0]) + own)
    return worst


def _vertices(ranges):
    """Every corner of a box given per coordinate as (lo, hi)."""
    corners = [[]]
    for a, b in ranges:
        corners = [c + [x] for c in corners for x in ((a,) if a == b else (a, b))]
    return corners
