"""Which state matrices a diagonal [0, 1] target (Mamba, Hawk) realises, read off A's coupled blocks.

A splits into blocks of components that A couples (connected through nonzero entries). A target whose
transitions are real diagonals in [0, 1] realises a block when it is
- one component with A_ii in [0, 1]: a decaying, holding or resetting scan channel;
- nilpotent with A^4 = 0 (shift registers of up to 4 slots, any init): the state is then a finite sum of
  the last 4 drives, which a causal convolution of width 4 computes (its zero padding supplies the init's
  first steps).
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs

CONV_LAGS = 3  # a width-4 causal convolution reads the current step and 3 before it


def blocks(A: Coeffs) -> list[list[int]]:
    """The coupled blocks of A: components connected through nonzero entries (in either direction)."""
    n = A.shape[0]
    parent = list(range(n))

    def find(i: int) -> int:
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    for i, j in zip(*A.nonzero, strict=True):
        parent[find(int(i))] = find(int(j))
    out: dict[int, list[int]] = {}
    for i in range(n):
        out.setdefault(find(i), []).append(i)
    return list(out.values())


def sub(A: Coeffs, idx: list[int]) -> Coeffs:
    """A's block on components idx (an exact A from its numerators: its every entry as a Fraction costs more)."""
    return Coeffs.from_rat(A.rat.block(idx, idx)) if A.exact else Coeffs(A.f64[np.ix_(idx, idx)])


def nilpotency(A: Coeffs, limit: int) -> int | None:
    """The least k <= limit with A^k = 0 (exactly), or None."""
    P = A
    for k in range(1, limit + 1):
        if P.is_zero:
            return k
        P = P @ A
    return None


def block_kind(A: Coeffs) -> str:
    """'decay' (1 x 1, entry in [0, 1]), 'fir' (nilpotent, A^4 = 0) or 'illegal'."""
    if A.shape == (1, 1):
        a = A.data[0, 0] if A.exact else Fraction(float(A.f64[0, 0]))
        if 0 <= a <= 1:
            return "decay"
    if nilpotency(A, CONV_LAGS + 1) is not None:
        return "fir"
    return "illegal"


def diagonal01(op: ir.Op) -> bool:
    """Whether a diagonal [0, 1] target realises this LinState as it is."""
    return all(block_kind(sub(op.A, b)) != "illegal" for b in blocks(op.A))
