"""Forward error analysis of a compiled model: each stage's local error, propagated to the outputs.

The model computes the lowered stack (`lsrl.lowering.stack`) up to each backend's realisation. Per step and
per stage, a backend states the error its realisation adds to each output value given exact inputs
(`StageErrors`: rounding, and the truncation error of approximate constructions); this module carries those
errors through every later stage and step (in value units, so scaled encodings do not matter):

- state   s_t = A s_{t-1} + B h_t + bias:  e_s <= S (|B| e_h + r),  S = sum_{k < max_len} |A^k|
          (exact powers of the coupled blocks, so rotations grow linearly, not like |A|^k);
- mlp     m = C z + c + D relu(E z + e):   e_m <= |C| e_z + (hidden errors through D) + r; hidden ReLUs whose
          arguments are parallel rows of E form a group read jointly per pattern of on/off units
          (lsrl.guarantee.relu_groups: a step relu(k t + 1) - relu(k t) off its kinks passes no error), a ReLU
          surrogate adding its own error only inside its band;
- gate    g = P m + Q (U m + u)(V m + v):  e_uv <= g (e_U |V m + v| + |U m + u| e_V) + e_U e_V,  g >= 1 the
          backend's gain on factor errors (a ReLU if-else multiplies a flag's error by its L);
- read-out y = W h + b.

Rounding follows the standard bound |fl(sum_i a_i b_i) - sum_i a_i b_i| <= gamma_n sum_i |a_i b_i| with
gamma_n = n u / (1 - n u), for any summation order, n counting the terms (+1 for the rounding of each weight).
Magnitudes are range analysis's bounds of the exact values plus the errors found so far.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from lsrl.guarantee.relu_groups import Errors, Unresolved, copy_rows, mlp_groups
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.recurrence import coupled_components
from lsrl.lowering.bounds import layout_bounds
from lsrl.lowering.stack import Stack

EXACT_I, FLOAT_EXACT_I, BOUNDED_I = 0, 1, 2
BIG = 1e300  # stands for an unbounded magnitude: 0 * BIG = 0 where 0 * inf would be nan; sums overflow to inf


def gamma(n, u: float):
    """gamma_n = n u / (1 - n u) (n may be an array of term counts)."""
    return n * u / (1 - n * u)


@dataclass
class StageErrors:
    """Per step, what a backend's realisation of one stage adds (value units, exact inputs assumed)."""

    out: np.ndarray  # per output value
    inner: np.ndarray  # mlp: per hidden ReLU argument; gate: per product (its own rounding)
    factors: tuple[np.ndarray, np.ndarray] | None = None  # gate: errors of the computed factors (U.., V..)
    exactness: np.ndarray | None = None  # per output value: EXACT_I / FLOAT_EXACT_I / BOUNDED_I (local)
    # mlp, per hidden unit: a ReLU surrogate switching at argument -shift (0 or half the margin), exact in
    # floats for |argument + shift| >= band, and its error inside the band; None: exact ReLUs
    relu_band: tuple[np.ndarray, np.ndarray, np.ndarray] | None = None
    relu_slope: tuple[float, float] = (-1.0, 1.0)  # mlp: the range of a surrogate's slope (exact ReLUs: [0, 1])
    gain: np.ndarray | float = 1.0  # gate: per product, the factor-error multiplier
    # gate, per product: whether the first factor is a switch (else the second), and the switch factor's error
    # below which the product is exact in it (a saturated sigmoid switch); None: no switches
    switch: tuple[np.ndarray, np.ndarray] | None = None
    residue: float = 0.0  # a residual-stream backend: what the stage may leave in the coordinates it drops
    # gate, per product: which factor being exactly 0 makes the realised product exactly 0 in floats (bit 1: the
    # first, bit 2: the second); None: neither (no claim)
    zero_products: np.ndarray | None = None
    # mlp, per hidden unit below its kink (past a surrogate's band): a bound of its float value, 0 in reals, in the
    # sums reading it at each step (0: exactly 0; a GRU switch holds its last value in two units, which the next
    # sum cancels only up to the hold's rounding)
    off_drift: np.ndarray | float = 0.0
    # state, per row: an accumulator whose sum takes the previous stage's switches one step late, exactly 0 once off
    # (a GRU latch, backends/gated.py), reading their current value, drift included, once: 1 where it reads only
    # switches, 2 where it also reads values (its sum rounds at one more step); 0: none; None: no latches
    latched: np.ndarray | None = None
    current: np.ndarray | float = 0.0  # state, per latched row: the error of reading the current switches (once)
    # per output value: how much more than |value| the terms its units hold may add up to in the sums reading it
    spread: np.ndarray | float = 0.0


@dataclass(frozen=True)
class Context:
    """What a backend needs to state a stage's local errors."""

    u: float  # unit roundoff of the dtype
    h: np.ndarray  # bound of |input value| (exact bound + error so far)
    out: np.ndarray  # bound of |output value| (exact bound, from range analysis)
    int_h: np.ndarray  # per input value: provably an integer
    int_out: np.ndarray  # per output value: provably an integer
    units: int = 2  # terms per value in the realisation's dot products (2: pair or switch encodings)

    @property
    def fan_in(self) -> int:
        """A bound on the terms of a dot product reading this stage's input: every unit of the layer
        (pairs and switch copies: 2 per value) and its own recurrent units, plus biases."""
        return 2 * (len(self.h) + len(self.out)) + 3


def _abs(c) -> np.ndarray:
    return c.abs64


def _dyadic_rows(c, u: float) -> tuple[np.ndarray, np.ndarray]:
    """Per row of a coefficient array: whether every entry is a dyadic rational m / 2^k with |m| < 1/u (so the
    dtype holds it exactly), and the row's largest denominator 2^k. Computed over the nonzeros only."""
    r, nz = c.rat, c.nonzero
    rows = nz[0]  # (a vector: each entry is a row)
    n_rows = r.num.shape[0]
    ok, den = np.ones(n_rows, dtype=bool), np.ones(n_rows)
    vals = r.num[nz]
    if vals.dtype != object:  # int64: vectorised
        g = np.gcd(vals, r.den)
        d, m = r.den // g, np.abs(vals // g)
        bad = ((d & (d - 1)) != 0) | (m >= 1 / u)
        np.maximum.at(den, rows, d.astype(float))
    else:
        pairs = [(r.den // math.gcd(int(v), r.den), abs(int(v)) // math.gcd(int(v), r.den)) for v in vals.tolist()]
        bad = np.array([d & (d - 1) != 0 or m >= 1 / u for d, m in pairs], dtype=bool)
        np.maximum.at(den, rows, np.array([float(d) for d, _ in pairs]))
    ok[rows[bad]] = False
    return ok, den


def dot_rounding(parts, bias, u: float, units: int = 2) -> np.ndarray:
    """Per row of sum_k M_k x_k + bias: the rounding bound gamma_n sum |terms|, or 0 where the row is integer
    arithmetic that the dtype represents exactly: dyadic coefficients over integer values, every partial sum
    a multiple of 1/den at most 1/u of them (as for the certificate, per row). n counts the row's nonzeros (the
    bias included) once per unit carrying them, plus one for the weights' own rounding: nnz + 1 where the
    realisation computes the row itself (`units` = 1), 2 nnz + 3 for pair or switch encodings."""
    total = _abs(bias) if bias is not None else 0.0
    nnz = (_abs(bias) > 0).astype(int) if bias is not None else 0
    rows_ok, den = _dyadic_rows(bias, u) if bias is not None else (True, 1.0)
    for M, x, ints in parts:
        A = _abs(M)
        total = total + A @ x
        nnz = nnz + (A > 0).sum(axis=1)
        ok, d = _dyadic_rows(M, u)
        rows_ok = rows_ok & ok & ~((A > 0) & ~ints[None, :]).any(axis=1)
        den = np.maximum(den, d)
    rows_ok &= total * den <= 1 / u
    # a row of one term times a power of two (a copy, a sign, a scaling) rounds nothing at all
    single = sum(_abs(M).sum(axis=1) for M, _, _ in parts)
    copy = (nnz == 1) & (np.log2(np.where(single > 0, single, 3.0)) % 1 == 0)
    n = nnz + 1 if units == 1 else units * nnz + 3
    return np.where(rows_ok | copy, 0.0, gamma(n, u) * total)


def _int_rows(parts, bias) -> np.ndarray:
    """Per row: integer coefficients over integer values (so the row's value is an integer)."""
    ok = np.full(parts[0][0].shape[0], True)
    for M, _, ints in parts:
        ok &= (M.rat.den == 1) & ~((_abs(M) > 0) & ~ints[None, :]).any(axis=1)
    return ok & (bias.rat.den == 1)


def rounding(stage, ctx: Context) -> StageErrors:
    """The local rounding of a stage computed directly from its matrices (the lrnn realisation; other
    backends start from this and add what their units change)."""
    h, ih = ctx.h, ctx.int_h

    def dot(parts, bias):
        return dot_rounding(parts, bias, ctx.u, ctx.units)

    if stage.kind == "state":
        s = np.maximum(ctx.out, _abs(stage.init))
        out = dot([(stage.A, s, ctx.int_out), (stage.B, h, ih)], stage.bias)
        # an init the dtype cannot hold (1/3) is off by its rounding before the first step, and a realisation
        # may round A init once more; charged per step, the propagation's sum of |A^k| covers every later step
        inexact = np.where(_dyadic_rows(stage.init, ctx.u)[0], 0.0, _abs(stage.init))
        out = out + gamma(3, ctx.u) * (_abs(stage.A) @ inexact + inexact)
        return StageErrors(out, np.zeros(0))
    if stage.kind == "mlp":
        hid_parts = [(stage.E, h, ih)]
        hid = _abs(stage.E) @ h + _abs(stage.e)
        out = dot([(stage.C, h, ih), (stage.D, hid, _int_rows(hid_parts, stage.e))], stage.c)
        return StageErrors(out, dot(hid_parts, stage.e))
    fu, fv = _abs(stage.U) @ h + _abs(stage.u), _abs(stage.V) @ h + _abs(stage.v)
    prod = fu * fv
    int_prod = integer_factors(stage, ctx)
    prod_err = np.where(int_prod & (prod <= 1 / ctx.u), 0.0, ctx.u * prod)
    out = dot([(stage.P, h, ih), (stage.Q, prod, int_prod)], None)
    return StageErrors(out, prod_err, (dot([(stage.U, h, ih)], stage.u), dot([(stage.V, h, ih)], stage.v)))


def integer_factors(stage, ctx: Context) -> np.ndarray:
    """Per product of a gate stage: both factors are integer arithmetic over exact integers (so the products,
    and a backend's integer constructions of them, are integers too)."""
    h, ih = ctx.h, ctx.int_h
    return _int_rows([(stage.U, h, ih)], stage.u) & _int_rows([(stage.V, h, ih)], stage.v)


def power_sums(A: np.ndarray, steps: int) -> np.ndarray:
    """S = sum_{k < steps} |A^k| (entrywise), per coupled block (uncoupled rows: the identity)."""
    n = A.shape[0]
    S = np.eye(n)
    idx = coupled_components(A)
    if not idx:
        return S
    a = A[np.ix_(idx, idx)]
    acc = _chain_sums(a, steps)
    S[np.ix_(idx, idx)] = (acc if acc is not None else _dense_sums(a, steps)) * (1 + 1e-9)  # (float64 powers'
    return S  # own rounding, far below this slack)


def _dense_sums(a: np.ndarray, steps: int) -> np.ndarray:
    eye = np.eye(len(a))
    P, acc = eye, np.zeros_like(eye)
    for k in range(steps):
        acc += np.abs(P)
        P = P @ a
        if not P.any():
            break
        if np.array_equal(P, eye):  # a permutation (a cyclic one-hot): every later period adds the same sum
            full, rest = divmod(steps, k + 1)
            acc *= full
            for _ in range(rest):
                acc += np.abs(P)
                P = P @ a
            break
    return acc


def _chain_sums(a: np.ndarray, steps: int) -> np.ndarray | None:
    """sum_{k < steps} |a^k| where every row and column of `a` has at most one nonzero (shift registers, cyclic
    one-hots, their scalings), in O(n) per power: row i of a^k is one entry, at the k-th link of i's chain,
    valued the product of the links' weights. None for any other `a`."""
    nz = a != 0
    if (nz.sum(axis=1) > 1).any() or (nz.sum(axis=0) > 1).any():
        return None
    n = len(a)
    rows = np.arange(n)
    nxt = np.where(nz.any(axis=1), nz.argmax(axis=1), -1)
    w = np.abs(a[rows, np.maximum(nxt, 0)])
    acc = np.eye(n)
    cur, mag, alive = rows.copy(), np.ones(n), np.ones(n, dtype=bool)
    for k in range(1, steps):
        alive &= nxt[cur] >= 0
        mag, cur = mag * w[cur], np.where(alive, nxt[cur], cur)
        if not alive.any():
            break
        if alive.all() and (cur == rows).all() and (mag == 1).all():  # a permutation: the first k powers repeat
            full, rest = divmod(steps, k)
            return acc * full + (_chain_sums(a, rest) if rest else 0)
        np.add.at(acc, (rows[alive], cur[alive]), mag[alive])
    return acc


@dataclass(frozen=True)
class OutputErrors:
    bounds: dict[str, np.ndarray]  # "output" and every probe: per component
    exactness: dict[str, int]  # worst class index any component depends on
    unresolved: list[Unresolved]  # steps the dtype cannot resolve, in stage order


MAX_HORIZONS = 8  # passes per analysis: the full one and up to 7 early horizons (see propagate)


@dataclass(frozen=True)
class _Pass:
    out: OutputErrors
    drives: dict[int, np.ndarray]  # per state stage: the error bound of its drive B h over the pass's steps


def propagate(stack: Stack, facts, x_bound: np.ndarray, x_integer: bool, x_exact: bool, max_len: int, u: float,
              stage_errors) -> OutputErrors:
    """Errors of every read-out, given range facts (lsrl.guarantee.facts.Facts) and the backend's
    `stage_errors(i, stage, ctx) -> StageErrors`. `x_exact`: every input value is exactly representable (else
    the input itself is rounded to the dtype).

    Bounds hold over every step up to max_len. An accumulator whose drive falls quiet after step K only gathers
    its drive's errors over steps 1..K, so it takes them from a pass over the first K steps (an early horizon):
    a latch filled by a prompt does not pay for the errors its inputs reach late in a long sequence."""
    passes: dict[int, _Pass | None] = {}  # by horizon (None: under way)

    def at(horizon: int) -> _Pass | None:
        if horizon not in passes:
            if len(passes) >= MAX_HORIZONS:
                return None
            passes[horizon] = None
            passes[horizon] = _pass(stack, facts, x_bound, x_integer, x_exact, horizon, u, stage_errors, at)
        return passes[horizon]

    return at(max_len).out


def _pass(stack: Stack, facts, x_bound, x_integer: bool, x_exact: bool, max_len: int, u: float, stage_errors,
          early) -> _Pass:
    """One propagation over steps 1..max_len; `early(K)`: the pass over steps 1..K (None past MAX_HORIZONS)."""
    drives: dict[int, np.ndarray] = {}
    mag = np.minimum(np.asarray(x_bound, dtype=float), BIG)
    ints = np.full(stack.input_dim, x_integer)
    errs = Errors(np.zeros(stack.input_dim) if x_exact else u * mag)
    cls = np.zeros(stack.input_dim, dtype=int)
    unresolved: list[Unresolved] = []
    # per value: the step after which it is 0 in reals and at most `drift` in floats (exactly 0 where drift is 0)
    quiet, drift = np.full(stack.input_dim, np.inf), np.zeros(stack.input_dim)
    kept = drift  # per value: the part of its drift not from its own stage's switches (what a latch sums)
    for i, st in enumerate(stack.stages):
        out_mag = np.minimum(layout_bounds(st.out, facts.magnitudes), BIG)
        out_int = layout_bounds(st.out, facts.integers).astype(bool)
        err = errs.err
        h, ints = mag + err, ints & (err == 0)  # a value is an exact integer in floats only without error
        se = stage_errors(i, st, Context(u, h, out_mag, ints, out_int))
        loc_cls = np.zeros(len(out_mag), dtype=int) if se.exactness is None else se.exactness
        tags: list = [None] * len(out_mag)
        groups = dict(errs.groups)
        if st.kind == "state":
            S = power_sums(st.A.f64, max_len)
            K, tail, tail_drive, once, rounds = _quiet_accumulators(S, st, quiet, drift, kept, se.latched)
            drive = drives[i] = _early_drive(errs.read(st.B), K, i, max_len, early)
            carried = S @ drive + tail * tail_drive + once + se.current
            rounded = S + np.diag(rounds)  # the steps whose update rounds: S's, and an accumulator's later ones
            new = carried + rounded @ se.out
            if new.any():  # the state's own rounding grows with its error: one more pass with that magnitude
                out_int = out_int & (new == 0)
                se = stage_errors(i, st, Context(u, h, out_mag + new, ints, out_int))
                new = carried + rounded @ se.out
            copies = copy_rows([st.A, st.B], st.bias)
            n_own = st.A.shape[1]
            tags = [errs.tags[c - n_own] if c is not None and c >= n_own else None for c in copies]
            new_cls = np.maximum(loc_cls, _dep(st.B, cls))
            new_cls = np.maximum(new_cls, _dep(S, new_cls))
        elif st.kind == "mlp":
            grp, member = mlp_groups(st, facts, se, errs, 1 + max(groups, default=0))
            groups.update(grp)
            unresolved += [x for g in grp.values() if (x := g.unresolved()) is not None]
            hid_err = np.zeros(st.E.shape[0])
            for k, (gid, m) in member.items():
                hid_err[k] = groups[gid].member_bound[m]
            hid = Errors(hid_err, [member[k] for k in range(len(hid_err))], groups)
            new = errs.read(st.C) + hid.read(st.D) + se.out
            hid_cls = _dep(st.E, cls)
            if se.relu_band is not None:  # a surrogate inside its band is bounded, not exact
                for k, (gid, m) in member.items():
                    if any(near[m] for _, _, near in groups[gid].patterns) and se.relu_band[1][k] > 0:
                        hid_cls[k] = max(hid_cls[k], BOUNDED_I)
            copy_c = copy_rows([st.C, st.D], st.c)
            n_in = st.C.shape[1]
            tags = [None if c is None else (errs.tags[c] if c < n_in else member[c - n_in]) for c in copy_c]
            new_cls = np.maximum.reduce([loc_cls, _dep(st.C, cls), _dep(st.D, hid_cls)])
        else:
            mu, mv = _abs(st.U) @ h + _abs(st.u), _abs(st.V) @ h + _abs(st.v)
            eu, ev = errs.read(st.U), errs.read(st.V)
            if se.factors is not None:
                eu, ev = eu + se.factors[0], ev + se.factors[1]
            prod = se.gain * (eu * mv + mu * ev) + eu * ev + se.inner
            if se.switch is not None:  # a switch still saturated: only the other factor's error counts
                on_u, below = se.switch
                e_sw, e_val, m_sw = np.where(on_u, eu, ev), np.where(on_u, ev, eu), np.where(on_u, mu, mv)
                prod = np.where(e_sw < below, m_sw * e_val + se.inner, prod)
            prod_cls = np.maximum(_dep(st.U, cls), _dep(st.V, cls))
            new = errs.read(st.P) + _abs(st.Q) @ prod + se.out
            copies = copy_rows([st.P, st.Q])
            tags = [errs.tags[c] if c is not None and c < st.P.shape[1] else None for c in copies]
            new_cls = np.maximum.reduce([loc_cls, _dep(st.P, cls), _dep(st.Q, prod_cls)])
        for r, t in enumerate(tags):
            if t is not None:  # a copy: the member's own bound (the read above may be larger: no group there)
                new[r] = groups[t[0]].member_bound[t[1]] + se.out[r]
                if se.out[r]:
                    tags[r] = None
        if st.kind == "state":
            quiet, drift = _quiet_rows([(st.A, np.full(st.A.shape[1], np.inf), 0.0), (st.B, quiet, drift)], st.bias,
                                       se.out)
            kept = drift
        elif st.kind == "mlp":
            hq, hd = _quiet_hidden(st, se, facts, member, groups, err, quiet, drift)
            kept = _quiet_rows([(st.C, quiet, drift)], st.c, se.out)[1]
            quiet, drift = _quiet_rows([(st.C, quiet, drift), (st.D, hq, hd)], st.c, se.out)
        else:
            quiet, drift = _quiet_rows([(st.P, quiet, drift), (st.Q, _quiet_products(st, se, quiet), 0.0)], None,
                                       se.out)
            kept = drift
        mag, cls, ints = out_mag + se.spread, new_cls, out_int
        live = {t[0] for t in tags if t is not None}
        errs = Errors(new, tags, {g: groups[g] for g in live})
    bounds, classes = {}, {}
    for name, r in [("output", stack.output), *stack.probes]:
        bounds[name] = errs.read(r.W) + dot_rounding([(r.W, mag + errs.err, ints & (errs.err == 0))], r.b, u)
        classes[name] = int(_dep(r.W, cls).max(initial=0))
    return _Pass(OutputErrors(bounds, classes, unresolved), drives)


def _early_drive(drive: np.ndarray, K: np.ndarray, i: int, max_len: int, early) -> np.ndarray:
    """State stage i's drive errors, where an accumulator row's drive is 0 after step K < max_len (`K`, inf
    elsewhere): over steps 1..K only, from the early pass at that horizon (whichever bound is smaller)."""
    drive = drive.copy()
    for k in np.unique(K[(K < max_len) & (drive > 0)]):
        if (p := early(int(k))) is not None:
            rows = (K == k) & (drive > 0)
            drive[rows] = np.minimum(drive[rows], p.drives[i][rows])
    return drive


def _quiet_rows(parts, bias, rounding: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row of sum_k M_k x_k + bias, given per value of each x_k (parts: (M_k, quiet, drift)) the step after
    which it is 0 in reals (inf: none) and a bound of its float value from then on (0: exactly 0): the same for the
    row (`_quiet_steps`). A sum of exact zeros rounds to exactly 0; one reading a drifting value is off by the
    drifts it reads plus its own `rounding` (its terms may be large units that cancel)."""
    d = np.zeros(parts[0][0].shape[0])
    for M, _, dr in parts:
        A = _abs(M)
        d = d + (A @ np.broadcast_to(dr, (A.shape[1],)) if A.size else 0.0)
    return _quiet_steps([(M, q) for M, q, _ in parts], bias), np.where(d > 0, d + rounding, 0.0)


def _quiet_steps(parts, bias) -> np.ndarray:
    """Per row of sum_k M_k x_k + bias, given per value of each x_k (parts: (M_k, quiet)) the step after which it
    is 0 in reals (inf: none): the step after which the row is (a bias of 0 and every value it reads 0 by then)."""
    K = np.zeros(parts[0][0].shape[0])
    for M, q in parts:
        rows, cols = M.nonzero
        np.maximum.at(K, rows, q[cols])
    return K if bias is None else np.where(_abs(bias) > 0, np.inf, K)


def _quiet_hidden(st, se: StageErrors, facts, member, groups, err: np.ndarray, quiet: np.ndarray,
                  drift: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per hidden unit of an MLP stage: the step K after which it is 0 in reals, off in floats (then at most
    StageErrors.off_drift in the sums reading it): a ReLU whose argument is <= -m from step K + 1 on
    (Ranges.quiet) and errs by less than m from then on, less the band and shift of a surrogate (which is exact
    in floats below its band). From step K + 1 on, an input that is 0 in reals by then errs by its drift only
    (`err`, `quiet`, `drift`: the stage input's errors and quiet steps)."""
    out = np.full(st.E.shape[0], np.inf)
    band, _, shift = se.relu_band if se.relu_band is not None else (np.zeros(len(out)),) * 3
    E = np.abs(st.E.f64)
    for k, (gid, m) in member.items():
        q = facts.quiet(*groups[gid].owners[m])
        if q is None:
            continue
        later = E[k] @ np.where(quiet <= q[0], drift, err) + se.inner[k]
        if min(groups[gid].arg_error(m), later) < q[1] - band[k] - shift[k]:
            out[k] = q[0]
    return out, np.broadcast_to(se.off_drift, out.shape)


def _quiet_products(st, se: StageErrors, quiet: np.ndarray) -> np.ndarray:
    """Per product of a gate stage: the step after which it is exactly 0 in floats, where the backend's product
    is exactly 0 with a factor that is (StageErrors.zero_products)."""
    out = np.full(len(st.gates), np.inf)
    if se.zero_products is None:
        return out
    qu, qv = _quiet_steps([(st.U, quiet)], st.u), _quiet_steps([(st.V, quiet)], st.v)
    out = np.where(se.zero_products & 1, qu, out)
    return np.minimum(out, np.where(se.zero_products & 2, qv, np.inf))


def _quiet_accumulators(S: np.ndarray, st, quiet: np.ndarray, drift: np.ndarray, kept: np.ndarray,
                        latched: np.ndarray | None) -> tuple[np.ndarray, ...]:
    """Shorten S's rows of accumulators whose drive is 0 in reals after some step K: s_i <- s_i + B_i h with every
    h_j read 0 from step K_j + 1 on (`quiet`). Where those h_j are exactly 0 in floats, s_i + 0 rounds nothing: only
    the first K = max K_j steps add error (S_ii = K instead of max_len). Where they drift, each later step adds the
    drift read and the update's own rounding. A latched row (StageErrors.latched) sums the switches' part of h one
    step late and exactly 0 once off, and reads their current value once: it may round at step K + 1 too (where
    it also reads values), later steps add only the drift of the rest (`kept`), and the current drift counts once.
    Returned per row: (K, steps after K, drift read per later step, drift read once, update roundings after K); inf
    and zeros for the other rows."""
    B = st.B.f64
    n = B.shape[0]
    Ks, tail, tail_drive, once = np.full(n, np.inf), np.zeros(n), np.zeros(n), np.zeros(n)
    rounds = np.zeros(n)
    for r in np.flatnonzero(st.accumulators):
        cols = np.flatnonzero(B[r])
        K = quiet[cols].max(initial=0.0)
        if np.isfinite(K):
            Ks[r] = max(K, 1)
            late = 0 if latched is None else int(latched[r])
            full, S[r, r] = S[r, r], min(S[r, r], Ks[r] * (1 + 1e-9))  # (at least once: an inexact init)
            tail_drive[r] = np.abs(B[r, cols]) @ (kept if late else drift)[cols]
            tail[r] = full - S[r, r] if tail_drive[r] > 0 else 0.0
            rounds[r] = max(tail[r], min(late == 2, full - S[r, r]))
            once[r] = np.abs(B[r, cols]) @ drift[cols] if late else 0.0
    return Ks, tail, tail_drive, once, rounds


def _dep(M, cls: np.ndarray) -> np.ndarray:
    """Per row of M (Coeffs, or a nonnegative array such as power sums): the worst class among the columns it
    reads (a nonzero entry)."""
    rows, cols = M.nonzero if isinstance(M, Coeffs) else np.nonzero(M)
    out = np.zeros(M.shape[0], dtype=int)
    np.maximum.at(out, rows, cls[cols])
    return out
