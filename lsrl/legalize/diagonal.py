"""Diagonalisation: a coupled block whose A is diagonalisable over the rationals with every eigenvalue in
[0, 1] (e.g. a running sum of another state, A = [[1, 1], [0, 0]]) becomes the diagonal state

    z_t = D z_{t-1} + P^-1 (B x_t + bias),   z_0 = P^-1 init,   read as s = P z,

with A = P D P^-1, exactly. Eigenvalues are found in floats and confirmed in rational arithmetic: each
candidate's eigenspace (the null space of A - lambda I, by exact elimination) must together span the
space. A Jordan block, a complex or irrational eigenvalue, or one outside [0, 1] gives None.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.passes import matrices as mx

MAX_DENOMINATOR = 1 << 20  # eigenvalue candidates are the floats' nearest rationals up to this denominator


def _fractions(c: Coeffs) -> list[list[Fraction]]:
    return [[Fraction(v) for v in row] for row in (c.rat.to_fractions() if c.exact else c.f64).tolist()]


def _null_space(M: list[list[Fraction]]) -> list[list[Fraction]]:
    """A basis of {v : M v = 0} (exact Gauss-Jordan elimination)."""
    M = [row[:] for row in M]
    n = len(M[0])
    pivots, r = [], 0
    for c in range(n):
        p = next((i for i in range(r, len(M)) if M[i][c] != 0), None)
        if p is None:
            continue
        M[r], M[p] = M[p], M[r]
        M[r] = [v / M[r][c] for v in M[r]]
        for i in range(len(M)):
            if i != r and M[i][c] != 0:
                f = M[i][c]
                M[i] = [a - f * b for a, b in zip(M[i], M[r], strict=True)]
        pivots.append(c)
        r += 1
    basis = []
    for free in (c for c in range(n) if c not in pivots):
        v = [Fraction(0)] * n
        v[free] = Fraction(1)
        for i, c in enumerate(pivots):
            v[c] = -M[i][free]
        basis.append(v)
    return basis


def _inverse(P: list[list[Fraction]]) -> list[list[Fraction]]:
    n = len(P)
    cols = _null_space([row + [-Fraction(int(i == j)) for j in range(n)] for i, row in enumerate(P)])
    # P X = I <=> [P | -I] [X; I] = 0: the null space's basis, normalised so its lower block is I
    X = [[Fraction(0)] * n for _ in range(n)]
    for v in cols:
        j = next(k for k in range(n) if v[n + k] != 0)
        for i in range(n):
            X[i][j] = v[i] / v[n + j]
    return X


def eigenbasis(A: Coeffs) -> tuple[list[Fraction], list[list[Fraction]]] | None:
    """(eigenvalues, P with those eigenvectors as columns) with A = P diag(eigenvalues) P^-1 and every
    eigenvalue in [0, 1], or None."""
    n = A.shape[0]
    ev = np.linalg.eigvals(A.f64)
    if np.abs(ev.imag).max(initial=0.0) > 1e-9:
        return None
    rows = _fractions(A)
    lams, vecs = [], []
    for lam in sorted({Fraction(float(v)).limit_denominator(MAX_DENOMINATOR) for v in ev.real}):
        if not 0 <= lam <= 1:
            return None
        space = _null_space([[a - lam * int(i == j) for j, a in enumerate(row)] for i, row in enumerate(rows)])
        lams += [lam] * len(space)
        vecs += space
    if len(vecs) != n:  # a Jordan block, or a candidate that was no eigenvalue
        return None
    return lams, [[vecs[j][i] for j in range(n)] for i in range(n)]


def diagonalise(rw, piece: ir.LinState, x: tuple[int, ...]) -> int | None:
    """The node of s = P z for a block that eigenbasis() diagonalises (None otherwise)."""
    basis = eigenbasis(piece.A)
    if basis is None:
        return None
    lams, P = basis
    Pi = Coeffs(np.array(_inverse(P), dtype=object))
    z = rw.add(ir.LinState(mx.diag(Coeffs(np.array(lams, dtype=object))),
                           None if piece.B is None else Pi @ piece.B, Pi @ piece.bias, Pi @ piece.init), x)
    return rw.add(ir.Linear((Coeffs(np.array(P, dtype=object)),), mx.zeros(len(lams))), (z,))
