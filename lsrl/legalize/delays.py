"""Long shift registers as chains of short ones, for targets whose delays come from a width-4 convolution.

A nilpotent state (A^k = 0) is a finite sum of its last k drives: with w_t = B x_t + bias for t >= 1 (and
0 before), s_t = A^t init + sum_{i < k} A^i w_{t-i}. The init term is folded into the drive as a one-off
A init at t = 1 (then s_t = sum_i A^i w'_{t-i} exactly). A 4-slot delay line D_1 holds w'_t .. w'_{t-3};
each next line D_m holds the last 4 values of D_{m-1}'s oldest slot, so 3 more lags each. Every line is a
shift register with A^4 = 0, which the target's convolution realises; the state becomes one linear map of
the lines. Exact at every step (no max_len involved).

The lines delay the drive's independent combinations, not the drive itself: with w' = W u (u the operands,
the constant and the first-step flag) and W = C R a rank factorisation, the lines hold v = R u (r values)
and s_t = sum_i A^i C v_{t-i}. A shift register of n flags fed by one value (tok2tok's match buffers) then
needs 4 units per line instead of 4 n, so its width grows as n, not n^2.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.rational import RatArray
from lsrl.legalize.spectrum import CONV_LAGS, nilpotency
from lsrl.passes import matrices as mx
from lsrl.passes.rewrite import Rewriter

SLOTS = CONV_LAGS + 1


def _delay_line(rw: Rewriter, x: int, d: int, rows: Coeffs | None = None) -> int:
    """A state holding x_t, x_{t-1}, x_{t-2}, x_{t-3} (zeros before the start) of the d values `rows @ x`."""
    shift = Coeffs.from_entries((SLOTS * d, SLOTS * d), {(s * d + i, (s - 1) * d + i): 1
                                                         for s in range(1, SLOTS) for i in range(d)})
    sel = rows if rows is not None else Coeffs.eye(d)
    B = Coeffs.from_rat(RatArray.concat([sel.rat, RatArray.zeros((SLOTS - 1) * d, sel.shape[1])]))
    return rw.add(ir.LinState(shift, B, mx.zeros(SLOTS * d), mx.zeros(SLOTS * d)), (x,))


def first_step(rw: Rewriter) -> int:
    """A node that is 1 at t = 1 and 0 after: the difference of a constant's lags 0 and 1 (A^2 = 0)."""
    f = rw.add(ir.LinState(mx.coeffs([[0, 0], [1, 0]]), None, mx.coeffs([1, 0]), mx.zeros(2)), ())
    return rw.add(ir.Linear((mx.coeffs([[1, -1]]),), mx.zeros(1)), (f,))


def split_delay_line(rw: Rewriter, op: ir.LinState, args: tuple[int, ...]) -> int | None:
    """A node equal to the nilpotent state `op` (over operands `args`), or None when A is not nilpotent."""
    n = op.A.shape[0]
    k = nilpotency(op.A, n + 1)
    if k is None or k <= SLOTS:
        return None
    # the drive w' = B x + bias + [t = 1] A init = W u, u = (x, 1, [t = 1]); its columns, then the rank factors
    a_init = op.A @ Coeffs(op.init.data[:, None] if op.init.exact else op.init.f64[:, None])
    parts = ([(op.B, args[0])] if op.B is not None else []) + ([(a_init, None)] if not a_init.is_zero else [])
    W = np.concatenate([m.data for m, _ in parts] + [op.bias.data[:, None]], axis=1)
    C, R = rank_factors(W) if all(m.exact for m, _ in parts) and op.bias.exact else (None, None)
    if C is None or C.shape[1] in (0, n) or (Coeffs(W).is_integer and not (Coeffs(C).is_integer
                                                                          and Coeffs(R).is_integer)):
        C, R = np.eye(n, dtype=object) * Fraction(1), W  # (an integer drive stays integer arithmetic in floats)
    r, mats, ins, at = C.shape[1], [], [], 0
    for m, x in parts:
        mats.append(Coeffs(R[:, at:at + m.shape[1]]))
        ins.append(x if x is not None else first_step(rw))
        at += m.shape[1]
    w = rw.add(ir.Linear(tuple(mats), Coeffs(R[:, at])), tuple(ins))
    lines = [_delay_line(rw, w, r)]
    oldest = Coeffs.from_entries((r, SLOTS * r), {(i, (SLOTS - 1) * r + i): 1 for i in range(r)})
    while SLOTS + (SLOTS - 1) * (len(lines) - 1) < k:  # lags covered so far: 0 .. 3 m
        lines.append(_delay_line(rw, lines[-1], r, oldest))
    # s = sum_i A^i C (lag i of v): lag i sits in line m = max(0, ceil((i - 3) / 3)), slot i - 3 m
    slots: dict[tuple[int, int], RatArray] = {}
    P = Coeffs(C)
    for i in range(k):
        m = 0 if i < SLOTS else -(-(i - CONV_LAGS) // CONV_LAGS)
        key = (m, i - CONV_LAGS * m)
        slots[key] = slots[key] + P.rat if key in slots else P.rat
        P = op.A @ P
    out = [Coeffs.from_rat(RatArray.concat([slots.get((m, s), RatArray.zeros(n, r)) for s in range(SLOTS)], axis=1))
           for m in range(len(lines))]
    return rw.add(ir.Linear(tuple(out), mx.zeros(n)), tuple(lines))


def rank_factors(W: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """W = C R, exactly (Fractions): C = W's pivot columns (n x r), R the nonzero rows of its reduced row
    echelon form (r x c)."""
    R, pivots = W.copy(), []
    for j in range(W.shape[1]):
        p = next((i for i in range(len(pivots), W.shape[0]) if R[i, j] != 0), None)
        if p is None:
            continue
        top = len(pivots)
        R[[top, p]] = R[[p, top]]
        R[top] = R[top] / R[top, j]
        for i in np.flatnonzero(R[:, j] != 0):
            if i != top:
                R[i] = R[i] - R[i, j] * R[top]
        pivots.append(j)
        if len(pivots) == W.shape[0]:
            break
    return W[:, pivots], R[:len(pivots)]
