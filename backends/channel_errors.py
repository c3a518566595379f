"""The error model of gated channels (`backends/channels.py`): each channel's rounding, per stage, in value units.

Every sum a layer forms (a channel's X, a state's accumulation, a product, the output rows and the stream's
addition) is charged gamma_n times its magnitude, except where it is integer arithmetic the dtype holds
exactly: there the construction is exact, and the model says so (float-exact).
"""

from __future__ import annotations

from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from lsrl.guarantee.propagate import FLOAT_EXACT_I, Context, StageErrors, dot_rounding, gamma
from lsrl.ir.coeffs import Coeffs

if TYPE_CHECKING:
    from lsrl.backends.channels import Chan, Plan


def lowest_bit(x: np.ndarray) -> np.ndarray:
    """The value of each float64's lowest set mantissa bit (0 for 0): every multiple of x by an integer is a
    multiple of it."""
    m, e = np.frexp(np.abs(x))
    mi = (m * 2.0**53).astype(np.int64)
    return np.ldexp((mi & -mi).astype(np.float64), e - 53)


def reader_sums(W: np.ndarray, b: np.ndarray | None, r: np.ndarray) -> float:
    """The largest |partial sum| of W r' + b, in units of its row's quantum, for integer |r'| <= r: each row's
    terms are multiples of the smallest lowest bit among its weights on nonzero coordinates (and its bias's)."""
    b = np.zeros(W.shape[0]) if b is None else b
    live = (W != 0) & (r[None, :] > 0)
    bits = np.where(live, lowest_bit(W), np.inf).min(axis=1, initial=np.inf)
    bits = np.minimum(bits, np.where(b != 0, lowest_bit(b), np.inf))
    sums = np.abs(W) @ r + np.abs(b)
    return float(np.where(np.isfinite(bits), sums / np.where(np.isfinite(bits), bits, 1.0), 0.0).max(initial=0.0))


def channel_values(p: Plan, st, ctx: Context, max_len: int) -> tuple[np.ndarray, np.ndarray]:
    """Per channel of a plan: a bound of |its value| (value units: channel d carries gain_d x its value) and
    whether it is an exact integer in floats, for exact integer inputs (as `plan_errors` derives them; a
    change of basis of the stream bounds the sums its writers form from these)."""
    u, h = ctx.u, ctx.h
    M, b = _form_coeffs(p.chans, p.width_in)
    _, _, ints = _shifted(M, b, (), ctx)
    Mf = np.abs(M.f64)
    f = (Mf @ h if Mf.shape[1] else np.zeros(len(p.chans))) + np.array([abs(float(ch.bias)) for ch in p.chans])
    # X whatever its taps (a lagged form is 0 before the first step): sum |w| |f| + |shift|
    mag = np.array([sum(abs(float(w)) for _, w in ch.taps) * f[d] + abs(float(ch.shift))
                    for d, ch in enumerate(p.chans)])
    val, exact = mag.copy(), ints & (mag <= 1 / u)
    for d, ch in enumerate(p.chans):
        if ch.kind == "const":
            val[d], exact[d] = 1.0, True
        elif ch.kind == "relu":  # relu(f) <= |f|
            val[d], exact[d] = f[d], bool(ints[d]) and ch.exact
        elif ch.kind == "prod":  # (a + Ma)(b + Mb)
            fb, bb = ch.gate
            y = sum(abs(float(c)) * h[j] for j, c in fb.terms) + abs(float(bb))
            y_int = (all(c.denominator == 1 for _, c in fb.terms) and Fraction(bb).denominator == 1
                     and all(ctx.int_h[j] for j, _ in fb.terms))
            val[d] = mag[d] * y
            exact[d] = bool(ints[d]) and y_int and val[d] <= 1 / u
    p.state_errors(ctx, max_len, np.zeros(len(p.chans)), mag.copy(), ints, val, exact, np.zeros(len(p.chans)))
    return val, exact


def _form_coeffs(chans: list[Chan], width: int) -> tuple[Coeffs, Coeffs]:
    """The channels' forms as one coefficient matrix over the stage input, and the X constants (the form's
    constant times the taps' sum, plus the shift)."""
    M = Coeffs.from_entries((len(chans), width), {(i, j): v for i, ch in enumerate(chans) for j, v in ch.form.terms})
    b = Coeffs.from_entries((len(chans),), {(i,): ch.bias * sum(w for _, w in ch.taps) + ch.shift
                                            for i, ch in enumerate(chans)})
    return M, b


def _shifted(M: Coeffs, b: Coeffs, shifts, ctx: Context) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Per row of M h + b + shift: rounding, magnitude and integrality."""
    b = b + Coeffs(np.array(list(shifts), dtype=object)) if len(shifts) else b
    rho = dot_rounding([(M, ctx.h, ctx.int_h)], b, ctx.u)
    return rho, np.abs(M.f64) @ ctx.h + np.abs(b.f64), _int_channels(M, b, ctx.int_h)


def plan_errors(p: Plan, st, ctx: Context, max_len: int, stale: float = 0.0) -> StageErrors:
    """Local errors of a layer realising stage `st` (value units, exact inputs): the X sums' rounding, the
    states' accumulation, the products', the output sum and the stream's addition (zero where each is
    integer arithmetic the dtype holds exactly). Errors a state channel makes each step recur (the
    propagation multiplies a state row's error by sum_k lambda^k); the others happen once per step, so
    they are divided by that sum for rows that hold a decaying state. `stale`: what earlier layers may have
    left in the coordinates past this stage's input (their zeroing's rounding), which rows written there
    inherit; `StageErrors.residue` says what this layer leaves in the coordinates it drops."""
    u = ctx.u
    M, b = _form_coeffs(p.chans, p.width_in)
    rho, mag, ints = _shifted(M, b, (), ctx)
    val, exact_val, own = mag.copy(), ints & (mag <= 1 / u), np.zeros(len(p.chans))
    for d, ch in enumerate(p.chans):
        if ch.kind == "const":
            val[d], rho[d], exact_val[d] = 1.0, 0.0, True
        elif ch.kind == "relu":
            exact_val[d] = ints[d] and ch.exact
        elif ch.kind == "prod":
            val[d] = np.inf  # read through the stage's own products below
    p.state_errors(ctx, max_len, rho, mag, ints, val, exact_val, own)
    n_out = len(ctx.out)
    out, own_rows, recur = np.zeros(n_out), np.zeros(n_out), np.ones(n_out)
    prods = _product_errors(p, st, ctx) if st.kind == "gate" else None
    residue = 0.0
    for r in range(max(n_out, p.width_in)):  # the rows past the output are zeroed: what they keep is residue
        reads = p.rows.get(r, {})
        terms, exact, err = [], True, 0.0
        for d, c in reads.items():
            ch = p.chans[d]
            if ch.kind == "prod":
                v, ok = (prods[2][r], prods[3][r]) if prods is not None else (np.inf, False)
            else:
                v, ok = val[d], exact_val[d]
            terms.append(abs(float(c)) * v)
            exact &= bool(ok) and c.denominator == 1
            if ch.kind == "lin":
                err += abs(float(c)) * rho[d]
            elif ch.kind == "state" and r < n_out:
                own_rows[r] += abs(float(c)) * own[d]
                lam = float(ch.decay)
                recur[r] = max_len if lam == 1 else (1 - lam**max_len) / (1 - lam)
        old = ctx.h[r] if r < p.width_in else stale
        total = sum(terms) + old
        if not (exact and total <= 1 / u):
            err += gamma(len(terms) + 2, u) * total
        if r < n_out:
            out[r] = err + (stale if r >= p.width_in else 0.0)
        else:
            residue = max(residue, err)
    se = StageErrors(own_rows + out / recur, np.zeros(0), exactness=np.full(n_out, FLOAT_EXACT_I), residue=residue)
    if st.kind == "mlp":
        ks = np.array([float(k) for k in p.ks])
        se.inner = dot_rounding([(st.E, ctx.h, ctx.int_h)], st.e, u)
        band = p.act.relu_zero / ks
        se.relu_band = (band, p.act.surrogate / ks + 2 * u * band, np.zeros(len(ks)))
        se.relu_slope = p.act.slope
    elif st.kind == "gate":
        se.inner = prods[0]
    return se


def _product_errors(p: Plan, st, ctx: Context):
    """Per product of a gate stage: its own error (the shifted factors' rounding, times the other shifted
    factor, and the product's rounding), |(a + Ma)(b + Mb)|, integrality; then per output row the largest
    product magnitude it reads and whether all those products are exact integers."""
    u = ctx.u
    ma, mb = zip(*p.prod_shifts, strict=True) if p.prod_shifts else ((), ())
    ra, am, ia = _shifted(st.U, st.u, ma, ctx)
    rb, bm, ib = _shifted(st.V, st.v, mb, ctx)
    prod = am * bm
    exact = ia & ib & (prod <= 1 / u)
    own = ra * bm + rb * am + ra * rb + np.where(exact, 0.0, u * prod)
    Q = np.abs(st.Q.f64)
    row_mag = np.where(Q > 0, prod[None, :], 0.0).max(axis=1, initial=0.0)
    row_exact = ~((Q > 0) & ~exact[None, :]).any(axis=1)
    return own, prod, row_mag, row_exact


def _int_channels(M: Coeffs, b: Coeffs, int_h: np.ndarray) -> np.ndarray:
    """Per channel: integer coefficients over integer values (so X is an integer)."""
    ok = (b.rat.den == 1) & np.ones(M.shape[0], dtype=bool)
    if M.shape[1]:
        ok &= (M.rat.den == 1) & ~((np.abs(M.f64) > 0) & ~int_h[None, :]).any(axis=1)
    return ok
