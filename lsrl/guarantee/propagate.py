"""Forward error analysis of a compiled model: each stage's local error, propagated to the outputs.

The model computes the lowered stack (`lsrl.lowering.stack`) up to each backend's realisation. Per step and
per stage, a backend states the error its realisation adds to each output value given exact inputs
(`StageErrors`: rounding, and the truncation error of approximate constructions); this module carries those
errors through every later stage and step (in value units, so scaled encodings do not matter):

- state   s_t = A s_{t-1} + B h_t + bias:  e_s <= S (|B| e_h + r),  S = sum_{k < max_len} |A^k|
          (exact powers of the coupled blocks, so rotations grow linearly, not like |A|^k);
- mlp     m = C z + c + D relu(E z + e):   e_m <= |C| e_z + |D| e_hid + r,  e_hid = |E| e_z + r_hid, ReLU being
          1-Lipschitz (a smooth surrogate is too, relative to the exact values, while e_hid stays below half
          its margin; past that its own error is added);
- gate    g = P m + Q (U m + u)(V m + v):  e_uv <= g (e_U |V m + v| + |U m + u| e_V) + e_U e_V,  g >= 1 the
          backend's gain on factor errors (a ReLU if-else multiplies a flag's error by its L);
- read-out y = W h + b.

Rounding follows the standard bound |fl(sum_i a_i b_i) - sum_i a_i b_i| <= gamma_n sum_i |a_i b_i| with
gamma_n = n u / (1 - n u), for any summation order, n counting the terms (+1 for the rounding of each weight).
Magnitudes are range analysis's bounds of the exact values plus the errors found so far.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsrl.ir.recurrence import coupled_components
from lsrl.lowering.bounds import layout_bounds
from lsrl.lowering.stack import Stack

EXACT_I, FLOAT_EXACT_I, BOUNDED_I = 0, 1, 2
BIG = 1e300  # stands for an unbounded magnitude: 0 * BIG = 0 where 0 * inf would be nan; sums overflow to inf


def gamma(n: int, u: float) -> float:
    return n * u / (1 - n * u)


@dataclass
class StageErrors:
    """Per step, what a backend's realisation of one stage adds (value units, exact inputs assumed)."""

    out: np.ndarray  # per output value
    inner: np.ndarray  # mlp: per hidden ReLU argument; gate: per product (its own rounding)
    factors: tuple[np.ndarray, np.ndarray] | None = None  # gate: errors of the computed factors (U.., V..)
    exactness: np.ndarray | None = None  # per output value: EXACT_I / FLOAT_EXACT_I / BOUNDED_I (local)
    relu_slack: tuple[np.ndarray, np.ndarray] | None = None  # mlp: per hidden unit (margin / 2, surrogate err)
    gain: np.ndarray | float = 1.0  # gate: per product, the factor-error multiplier


@dataclass(frozen=True)
class Context:
    """What a backend needs to state a stage's local errors."""

    u: float  # unit roundoff of the dtype
    h: np.ndarray  # bound of |input value| (exact bound + error so far)
    out: np.ndarray  # bound of |output value| (exact bound, from range analysis)
    int_h: np.ndarray  # per input value: provably an integer
    int_out: np.ndarray  # per output value: provably an integer

    @property
    def fan_in(self) -> int:
        """A bound on the terms of a dot product reading this stage's input: every unit of the layer
        (pairs and switch copies: 2 per value) and its own recurrent units, plus biases."""
        return 2 * (len(self.h) + len(self.out)) + 3


def _abs(c) -> np.ndarray:
    return np.abs(c.f64)


def _exact_dyadic(cs, u: float) -> tuple[bool, int]:
    """Whether every coefficient is a dyadic rational m / den with |m| < 1/u (exactly representable), and den."""
    den = 1
    for c in cs:
        r = c.rat
        if r.den & (r.den - 1) or r.max_num >= 1 / u:
            return False, 0
        den = max(den, r.den)
    return True, den


def dot_rounding(parts, bias, u: float) -> np.ndarray:
    """Per row of sum_k M_k x_k + bias: the rounding bound gamma_n sum |terms| (n: 2 x the row's nonzeros + 3,
    for pair or switch encodings, the bias and each weight's rounding), or 0 where the row is integer
    arithmetic that the dtype represents exactly: dyadic coefficients over integer values, every partial sum
    a multiple of 1/den at most 1/u of them (as for the certificate, per row)."""
    total = _abs(bias) if bias is not None else 0.0
    nnz = (_abs(bias) > 0).astype(int) if bias is not None else 0
    exact, den = _exact_dyadic([M for M, _, _ in parts] + ([bias] if bias is not None else []), u)
    rows_ok = np.full(parts[0][0].shape[0], exact)
    for M, x, ints in parts:
        A = _abs(M)
        total = total + A @ x
        nnz = nnz + (A > 0).sum(axis=1)
        rows_ok &= ~((A > 0) & ~ints[None, :]).any(axis=1)
    rows_ok &= total * den <= 1 / u
    return np.where(rows_ok, 0.0, gamma_rows(2 * nnz + 3, u) * total)


def gamma_rows(n: np.ndarray, u: float) -> np.ndarray:
    return n * u / (1 - n * u)


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
    if stage.kind == "state":
        s = np.maximum(ctx.out, _abs(stage.init))
        out = dot_rounding([(stage.A, s, ctx.int_out), (stage.B, h, ih)], stage.bias, ctx.u)
        return StageErrors(out, np.zeros(0))
    if stage.kind == "mlp":
        hid_parts = [(stage.E, h, ih)]
        hid = _abs(stage.E) @ h + _abs(stage.e)
        out = dot_rounding([(stage.C, h, ih), (stage.D, hid, _int_rows(hid_parts, stage.e))], stage.c, ctx.u)
        return StageErrors(out, dot_rounding(hid_parts, stage.e, ctx.u))
    fu, fv = _abs(stage.U) @ h + _abs(stage.u), _abs(stage.V) @ h + _abs(stage.v)
    iu, iv = _int_rows([(stage.U, h, ih)], stage.u), _int_rows([(stage.V, h, ih)], stage.v)
    prod = fu * fv
    int_prod = iu & iv
    prod_err = np.where(int_prod & (prod <= 1 / ctx.u), 0.0, ctx.u * prod)
    out = dot_rounding([(stage.P, h, ih), (stage.Q, prod, int_prod)], None, ctx.u)
    return StageErrors(out, prod_err, (dot_rounding([(stage.U, h, ih)], stage.u, ctx.u),
                                       dot_rounding([(stage.V, h, ih)], stage.v, ctx.u)))


def power_sums(A: np.ndarray, steps: int) -> np.ndarray:
    """S = sum_{k < steps} |A^k| (entrywise), per coupled block (uncoupled rows: the identity)."""
    n = A.shape[0]
    S = np.eye(n)
    idx = coupled_components(A)
    if not idx:
        return S
    a = A[np.ix_(idx, idx)]
    P, acc = np.eye(len(idx)), np.zeros((len(idx), len(idx)))
    for _ in range(steps):
        acc += np.abs(P)
        P = P @ a
        if not P.any():
            break
    S[np.ix_(idx, idx)] = acc * (1 + 1e-9)  # the float64 powers' own rounding, far below this slack
    return S


@dataclass(frozen=True)
class OutputErrors:
    bounds: dict[str, np.ndarray]  # "output" and every probe: per component
    exactness: dict[str, int]  # worst class index any component depends on


def propagate(stack: Stack, magnitudes, integers, x_bound: np.ndarray, x_integer: bool, max_len: int, u: float,
              stage_errors) -> OutputErrors:
    """Errors of every read-out, given range facts (`magnitudes(node)`, `integers(node)`: per component) and
    `stage_errors(i, stage, ctx) -> StageErrors` (the backend's)."""
    mag = np.minimum(np.asarray(x_bound, dtype=float), BIG)
    ints = np.full(stack.input_dim, x_integer)
    err = np.zeros(stack.input_dim)
    cls = np.zeros(stack.input_dim, dtype=int)
    for i, st in enumerate(stack.stages):
        out_mag = np.minimum(layout_bounds(st.out, magnitudes), BIG)
        out_int = layout_bounds(st.out, integers).astype(bool)
        h, ints = mag + err, ints & (err == 0)  # a value is an exact integer in floats only without error
        se = stage_errors(i, st, Context(u, h, out_mag, ints, out_int))
        loc_cls = np.zeros(len(out_mag), dtype=int) if se.exactness is None else se.exactness
        if st.kind == "state":
            S = power_sums(st.A.f64, max_len)
            d = _abs(st.B) @ err + se.out
            new = S @ d
            if new.any():  # the state's own rounding grows with its error: one more pass with that magnitude
                out_int = out_int & (new == 0)
                se = stage_errors(i, st, Context(u, h, out_mag + new, ints, out_int))
                new = S @ (_abs(st.B) @ err + se.out)
            new_cls = np.maximum(loc_cls, _dep(_abs(st.B), cls))
            new_cls = np.maximum(new_cls, _dep(S, new_cls))
        elif st.kind == "mlp":
            hid = _abs(st.E) @ err + se.inner
            hid_cls = _dep(_abs(st.E), cls)
            if se.relu_slack is not None:
                half_margin, surrogate = se.relu_slack
                past = hid >= half_margin
                hid = hid + np.where(past, surrogate, 0.0)
                hid_cls = np.maximum(hid_cls, np.where(past & (surrogate > 0), BOUNDED_I, 0))
            new = _abs(st.C) @ err + _abs(st.D) @ hid + se.out
            new_cls = np.maximum.reduce([loc_cls, _dep(_abs(st.C), cls), _dep(_abs(st.D), hid_cls)])
        else:
            mu, mv = _abs(st.U) @ h + _abs(st.u), _abs(st.V) @ h + _abs(st.v)
            eu, ev = _abs(st.U) @ err, _abs(st.V) @ err
            if se.factors is not None:
                eu, ev = eu + se.factors[0], ev + se.factors[1]
            prod = se.gain * (eu * mv + mu * ev) + eu * ev + se.inner
            prod_cls = np.maximum(_dep(_abs(st.U), cls), _dep(_abs(st.V), cls))
            new = _abs(st.P) @ err + _abs(st.Q) @ prod + se.out
            new_cls = np.maximum.reduce([loc_cls, _dep(_abs(st.P), cls), _dep(_abs(st.Q), prod_cls)])
        mag, err, cls, ints = out_mag, new, new_cls, out_int
    bounds, classes = {}, {}
    for name, r in [("output", stack.output), *stack.probes]:
        W = _abs(r.W)
        bounds[name] = W @ err + dot_rounding([(r.W, mag + err, ints & (err == 0))], r.b, u)
        classes[name] = int(_dep(W, cls).max(initial=0))
    return OutputErrors(bounds, classes)


def _dep(M: np.ndarray, cls: np.ndarray) -> np.ndarray:
    """Per row of M: the worst class among the columns it reads."""
    if not M.size:
        return np.zeros(M.shape[0], dtype=int)
    return np.where(M > 0, cls[None, :], 0).max(axis=1, initial=0)
