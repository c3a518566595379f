"""State helpers: coupled blocks, orbits (exact and float), congruences and bounds of linear recurrences."""

from __future__ import annotations

import math
from collections import deque

import numpy as np

from lsrl.analysis.ranges.arith import INF, ZERO, Q, _connected, _gcd, _up
from lsrl.analysis.ranges.limits import EXACT_BITS, ORBIT_LIMIT, SIM_LIMIT


def _blocks(rows) -> list[list[int]]:
    """Components coupled through A (connected components of its sparsity pattern), each sorted; `rows`: per
    row of A, its nonzero (column, entry) pairs."""
    return _connected([[i, *(j for j, _ in row)] for i, row in enumerate(rows)])


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
        pts = [tuple(Q(x, D) for x in q) for q in pts]
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


RETURN_REL = 1e-12  # a float orbit back within this (relative) of s_1 is treated as periodic from there


def _simulate(A: list, b: list, s0: list, L: int) -> np.ndarray:
    """s_0 .. s_m (rows) of s_t = A s_{t-1} + b in float64, in plain Python floats (numpy's per-call overhead
    dominates at these sizes): m = L, or the first m > 1 with s_m back at s_1 (within RETURN_REL), where a
    periodic orbit can stop. The error bound below holds for any summation order."""
    if len(s0) == 2:  # rotations (mod counters): unrolled, several times faster
        (a, b_), (c, d) = A
        (e, f), (x, y) = b, s0
        xs, ys = [x], [y]
        x1, y1 = x, y = a * x + b_ * y + e, c * x + d * y + f
        xs.append(x)
        ys.append(y)
        tol = RETURN_REL * (1.0 + abs(x1) + abs(y1))
        for _ in range(L - 1):
            x, y = a * x + b_ * y + e, c * x + d * y + f
            xs.append(x)
            ys.append(y)
            if abs(x - x1) + abs(y - y1) <= tol:
                break
        return np.column_stack([np.array(xs[:L + 1]), np.array(ys[:L + 1])])
    rows = list(zip(A, b, strict=True))
    s, out = s0, [s0]
    for t in range(L):
        s = [sum(a * x for a, x in zip(r, s, strict=True)) + c for r, c in rows]
        out.append(s)
        if t == 0:
            s1, tol = s, RETURN_REL * (1.0 + sum(map(abs, s)))
        elif sum(abs(x - y) for x, y in zip(s, s1, strict=True)) <= tol:
            break
    return np.array(out)


def _simulate_np(A: np.ndarray, b: np.ndarray, s0: np.ndarray, L: int) -> np.ndarray:
    pts = np.empty((L + 1, len(s0)))
    pts[0] = s = s0
    for t in range(1, L + 1):
        s = A @ s + b
        pts[t] = s
        if t > 1 and np.abs(s - pts[1]).sum() <= RETURN_REL * (1.0 + np.abs(pts[1]).sum()):
            return pts[:t + 1]
    return pts


def _orbit_float(A, b, s0, L):
    """Float-simulated orbit with a rigorous 2-norm error bound per step, clustered into balls; or None.

    A simulation that comes back to s_1 after p steps stops there: the true orbit's differences
    d_t = s_t - s_{t-p} obey d_t = A d_{t-1}, so ||s_t - s_{r}|| <= (t // p) rho^L ||s_{p+1} - s_1|| for the r in
    1..p with r = t mod p, and the p points, their balls widened by that drift, stand for all L steps (point
    r at the steps r + p Z)."""
    if L > SIM_LIMIT:
        return None
    n = len(A)
    Af = np.array([[float(a) for a in row] for row in A])
    bf = np.array([float(x) for x in b])
    sf = np.array([float(x) for x in s0])
    dA = math.sqrt(float(sum(((a - Q(float(a))) ** 2 for row in A for a in row), ZERO)))
    db = math.sqrt(float(sum(((x - Q(float(x))) ** 2 for x in b), ZERO)))
    e0 = math.sqrt(float(sum(((x - Q(float(x))) ** 2 for x in s0), ZERO)))
    with np.errstate(all="ignore"):
        pts = _simulate(Af.tolist(), bf.tolist(), sf.tolist(), L) if n <= 8 else _simulate_np(Af, bf, sf, L)
        if not np.all(np.isfinite(pts)):
            return None
        gam = 1.01 * (n + 2) * 2.0 ** -53
        prev = np.abs(pts[:-1])
        eta = gam * np.linalg.norm(prev @ np.abs(Af).T + np.abs(bf), axis=1) \
            + dA * np.linalg.norm(pts[:-1], axis=1) + db
    rho = _rho(A)
    errs_l, e = [], e0
    for step in eta.tolist():
        e = rho * e + step * (1 + 1e-12)
        errs_l.append(e)
    errs = np.array(errs_l)
    if not math.isfinite(e):
        return None
    P, period = pts[1:], 0
    if len(P) < L:  # came back to s_1 after p = len(P) - 1 steps
        period = len(P) - 1
        delta = (float(np.linalg.norm(P[-1] - P[0])) * (1 + 1e-12) + errs[-1] + errs[0])
        drift = (L // period) * max(1.0, rho) ** L * delta * (1 + 1e-9)
        if not math.isfinite(drift):
            return None
        P, errs = P[:-1], errs[:-1] + drift
    scale = 1.0 + float(np.abs(P).max())
    tol = max(1e-9 * scale, 1e3 * float(errs.max()))
    # Cluster in the max norm on a grid of cells of width tol centred on the first point: the points of
    # one cell lie within tol of its first point, the cluster's representative. A point of a periodic
    # orbit that happens to sit on a cell boundary splits into two clusters: sound, only less compact.
    first, assign = _group_rows(np.floor((P - P[0]) / tol + 0.5).astype(np.int64))
    if len(first) > ORBIT_LIMIT:
        return None
    order = np.argsort(first, kind="stable")  # clusters numbered by first visit, as the orbit runs
    rank = np.empty_like(order)
    rank[order] = np.arange(len(order))
    assign, first = rank[assign], first[order]
    rad = np.zeros(len(first))
    np.maximum.at(rad, assign, np.abs(P - P[first[assign]]).max(axis=1) + errs)
    by = np.lexsort((np.arange(len(P)), assign))  # steps grouped by cluster, in time order
    bounds = np.flatnonzero(np.diff(assign[by])) + 1
    out = []
    for k, taus in enumerate(np.split(by + 1, bounds)):  # the steps at which the orbit is in ball k
        step = math.gcd(int(np.gcd.reduce(np.diff(taus))) if len(taus) > 1 else 0, period)
        out.append((tuple(Q(float(x)) for x in P[first[k]]), _up(float(rad[k])), (int(taus[0]), step)))
    return out


def _group_rows(rows: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Equal rows grouped: each group's first row index, and each row's group (what np.unique(axis=0)
    returns, by a lexicographic sort of the columns, which is several times faster)."""
    order = np.lexsort(rows.T[::-1])
    ranked = rows[order]
    new = np.ones(len(rows), dtype=bool)
    np.any(ranked[1:] != ranked[:-1], axis=1, out=new[1:])
    group = np.empty(len(rows), dtype=np.int64)
    group[order] = np.cumsum(new) - 1
    return np.minimum.reduceat(order, np.flatnonzero(new)), group


def _congruence(A, dv, s0):
    """Per component (off, step) with s_t in off + step Z for all t, or None (a lattice fixed point).

    Chaotic iteration of s <- s join (A s + dv) from s_0: a component is recomputed only when one it reads
    changed (a worklist), which reaches the same least fixed point as recomputing every component per round
    but visits a T-slot shift register's slots O(T) times, not T rounds of T."""
    n = len(A)
    dl = [v.lattice() for v in dv]
    cur = [(s0[i], ZERO) for i in range(n)]

    def norm(lt):
        return lt if lt is None or lt[1] == 0 else (lt[0] % lt[1], lt[1])

    nonzero = [[(j, a) for j, a in enumerate(row) if a != 0] for row in A]
    readers: list[list[int]] = [[] for _ in range(n)]
    for i, row in enumerate(nonzero):
        for j, _ in row:
            readers[j].append(i)
    work, queued = deque(range(n)), [True] * n
    budget = (n + 64) * n  # the per-round iteration's cap, in component updates
    while work:
        budget -= 1
        if budget < 0:
            return [None] * n
        i = work.popleft()
        queued[i] = False
        c = cur[i]
        if c is None:
            continue
        m = dl[i]
        if m is not None:
            off, st = m
            for j, a in nonzero[i]:
                if cur[j] is None:
                    m = None
                    break
                off += a * cur[j][0]
                st = _gcd(st, abs(a) * cur[j][1])
            else:
                m = (off, st)
        new = None if m is None else norm((c[0], _gcd(_gcd(c[1], m[1]), m[0] - c[0])))
        if new != norm(c):
            cur[i] = new
            for r in readers[i]:
                if not queued[r]:
                    queued[r] = True
                    work.append(r)
    return [None if c is None or c[1] == 0 else norm(c) for c in cur]


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
    conv = [(-INF if not np.isfinite(a) else Q(float(a)), INF if not np.isfinite(b) else Q(float(b)))
            for a, b in zip(ylo, yhi, strict=True)]
    return [c[0] for c in conv], [c[1] for c in conv], how


def _exact_invariant(A, dv, s0, lo, hi):
    """Float bounds snapped to nearby simple rationals, kept if the box is provably invariant (exactly:
    it holds s0 and A box + D lies inside), in which case A box + D bounds s_1..s_L; else None."""
    n = len(A)
    if n > 4096 or any(isinstance(x, float) for x in (*lo, *hi)) or \
            any(isinstance(v.lo, float) or isinstance(v.hi, float) for v in dv):
        return None
    for D in (1 << 20, 1 << 10, 16, 1):
        box = _check_invariant(A, dv, s0, [Q(math.floor((x + Q(1, 10 ** 9) * (1 + abs(x))) * D), D)
                                           for x in lo],
                               [Q(math.ceil((x - Q(1, 10 ** 9) * (1 + abs(x))) * D), D) for x in hi])
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
        for j, c in enumerate(A[i]):
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
    # x -> rho x + dn is increasing, and so is its float rounding: R_1, R_2, .. is monotone, its max an end
    R1 = R = rho * R + dn
    for _ in range(L - 1):
        R = rho * R + dn
    best = max(R1, R) if L > 0 else 0.0
    return _up(best) if math.isfinite(best) else None
