"""Lifting of periodic states: an input-free state whose orbit repeats becomes a cyclic one-hot state.

Rule: a LinState with no input (s_t = A s_{t-1} + bias) visits v_0, v_1, ... (readers see v_t). When the
orbit is periodic with period n <= MAX_ORBIT (v_n = v_0), the state is a linear map of the one-hot of
t mod n: s_t = M p_t, with p a cyclic permutation state (0/1 entries, exact in every dtype) and the columns
of M the orbit. Rotations by 2 pi / n (mod_onehot), cyclic permutations and sign flips are such states.

Why: a rotation state drifts in floats (its entries are rounded cosines; the float32 drift over 4096 steps
is ~1e-4), and every step reading it inherits that drift; the lifted state has none, and readers of the
one-hot become exact linear maps (lsrl/passes/fold_onehot.py). It costs n units instead of dim(s).

Periodicity with irrational entries is decided in float64: v_n within TOL of v_0 (relative) and the second
period repeating the first. The lifted model then follows the exact orbit, where the float64 program would
drift by ~n ulps per period; that is what a rotation by 2 pi / n means.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.passes import Pass
from lsrl.passes import matrices as mx
from lsrl.passes.rewrite import Result, Rewriter, Rule, rewrite

MAX_ORBIT = 1024  # longest period lifted (units of the one-hot state)
TOL = 1e-9


def is_onehot_state(op: ir.Op) -> bool:
    """A state whose value is a basis vector at every step: no input, no bias, a one-hot init, and A maps
    every basis vector to a basis vector (each column holds one 1)."""
    if not isinstance(op, ir.LinState) or op.B is not None or not op.bias.is_zero or not op.A.exact:
        return False
    if not op.init.exact:
        return False
    return _one_one_per_column(op.init.rat.num[:, None], op.init.rat.den) and \
        _one_one_per_column(op.A.rat.num, op.A.rat.den)


def _one_one_per_column(num: np.ndarray, den: int) -> bool:
    """Every column of the integer matrix num / den holds one 1 and zeros."""
    return den == 1 and bool(((num == 0) | (num == 1)).all()) and bool(((num == 1).sum(axis=0) == 1).all())


def orbit(op: ir.LinState) -> list[np.ndarray] | None:
    """The values v_0 .. v_{n-1} a periodic input-free state shows its readers (exact Fractions when A, bias
    and init are exact), or None when it is not periodic within MAX_ORBIT steps."""
    A, b, v = op.A.f64, op.bias.f64, op.init.f64
    seen = []
    with np.errstate(all="ignore"):  # a growing state overflows to inf/nan: never close, so not periodic
        for _ in range(2 * MAX_ORBIT + 1):
            v = A @ v + b
            seen.append(v)
    if not np.isfinite(seen[-1]).all():
        return None
    scale = 1 + max(float(np.abs(s).max(initial=0)) for s in seen)
    close = [k for k in range(1, MAX_ORBIT + 1) if np.abs(seen[k] - seen[0]).max(initial=0) <= TOL * scale]
    if not close:
        return None
    n = close[0]
    if any(np.abs(seen[n + j] - seen[j]).max(initial=0) > TOL * scale for j in range(n)):
        return None
    if not (op.A.exact and op.bias.exact and op.init.exact):
        return [np.array([Fraction(float(x)) for x in s], dtype=object) for s in seen[:n]]
    exact, v = [], op.init.rat
    for _ in range(n + 1):  # in integer numerators (a 2T-cycle of tok2tok's one-hots: n^2 entries)
        v = op.A.rat @ v + op.bias.rat
        exact.append(v)
    if not exact[n].equals(exact[0]):  # periodic in floats only
        return None
    return [p.to_fractions() for p in exact[:n]]


def lift_periodic_state(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if not isinstance(op, ir.LinState) or op.B is not None or is_onehot_state(op):
        return None
    orb = orbit(op)
    if orb is None or len(orb) < 2:
        return None
    n = len(orb)
    shift = Coeffs.ones_at((n, n), [(j + 1) % n for j in range(n)], list(range(n)))  # e_j -> e_{j+1}
    init = Coeffs.ones_at((n, 1), [n - 1], [0]).data[:, 0]  # so that the first step shows e_0
    p = rw.add(ir.LinState(shift, None, mx.zeros(n), Coeffs(init)), ())
    M = mx.coeffs(np.stack(orb, axis=1))
    return ir.Linear((M,), mx.zeros(op.A.shape[0])), (p,)


RULES = [Rule("lift_periodic_state", lift_periodic_state, ir.LinState)]

PASS = Pass("lift_orbits", lambda g: rewrite(g, RULES),
            "replace input-free periodic states (rotations by 2 pi / n, permutations, sign flips) by a cyclic "
            "one-hot state and a linear map of it")
