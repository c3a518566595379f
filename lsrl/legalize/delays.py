"""Long shift registers as chains of short ones, for targets whose delays come from a width-4 convolution.

A nilpotent state (A^k = 0) is a finite sum of its last k drives: with w_t = B x_t + bias for t >= 1 (and
0 before), s_t = A^t init + sum_{i < k} A^i w_{t-i}. The init term is folded into the drive as a one-off
A init at t = 1 (then s_t = sum_i A^i w'_{t-i} exactly). A 4-slot delay line D_1 holds w'_t .. w'_{t-3};
each next line D_m holds the last 4 values of D_{m-1}'s oldest slot, so 3 more lags each. Every line is a
shift register with A^4 = 0, which the target's convolution realises; the state becomes one linear map of
the lines. Exact at every step (no max_len involved).
"""

from __future__ import annotations

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
    # the drive w' = B x + bias + [t = 1] A init, as one Linear
    mats, ins = [], []
    if op.B is not None:
        mats.append(op.B)
        ins.append(args[0])
    a_init = op.A @ Coeffs(op.init.data[:, None] if op.init.exact else op.init.f64[:, None])
    if not a_init.is_zero:
        mats.append(a_init)
        ins.append(first_step(rw))
    w = rw.add(ir.Linear(tuple(mats), op.bias), tuple(ins))
    lines = [_delay_line(rw, w, n)]
    oldest = Coeffs.from_entries((n, SLOTS * n), {(i, (SLOTS - 1) * n + i): 1 for i in range(n)})
    while SLOTS + (SLOTS - 1) * (len(lines) - 1) < k:  # lags covered so far: 0 .. 3 m
        lines.append(_delay_line(rw, lines[-1], n, oldest))
    # s = sum_i A^i (lag i of w'): lag i sits in line m = max(0, ceil((i - 3) / 3)), slot i - 3 m
    slots: dict[tuple[int, int], RatArray] = {}
    P = Coeffs.eye(n)
    for i in range(k):
        m = 0 if i < SLOTS else -(-(i - CONV_LAGS) // CONV_LAGS)
        at = (m, i - CONV_LAGS * m)
        slots[at] = slots[at] + P.rat if at in slots else P.rat
        P = P @ op.A
    out = [Coeffs.from_rat(RatArray.concat([slots.get((m, s), RatArray.zeros(n, n)) for s in range(SLOTS)], axis=1))
           for m in range(len(lines))]
    return rw.add(ir.Linear(tuple(out), mx.zeros(n)), tuple(lines))
