"""Exact coefficient helpers for rewrites: every result is re-normalised so integers become Fractions."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lsrl.ir.coeffs import Coeffs, obj_array


def coeffs(data) -> Coeffs:
    """Coeffs from any array-like; unlike Coeffs(object array) it makes stray ints (numpy's 0) Fractions."""
    return Coeffs(obj_array(data))


def zeros(*shape: int) -> Coeffs:
    return Coeffs.zeros(*shape)


def matmul(a: Coeffs, b: Coeffs) -> Coeffs:
    return a @ b


def add(a: Coeffs, b: Coeffs) -> Coeffs:
    return a + b


def diag(v: Coeffs) -> Coeffs:
    n = v.shape[0]
    out = zeros(n, n).data.copy()
    for i in range(n):
        out[i, i] = v.data[i]
    return coeffs(out)


def columns(m: Coeffs, indices: Sequence[int], width: int) -> Coeffs:
    """m @ P where P (len(indices) x width) selects `indices`: column j of m lands in column indices[j]."""
    out = zeros(m.shape[0], width).data.copy()
    for j, i in enumerate(indices):
        out[:, i] = out[:, i] + m.data[:, j]
    return coeffs(out)


def rows(m: Coeffs, indices: Sequence[int]) -> Coeffs:
    return coeffs(m.data[list(indices)])


def split_columns(m: Coeffs, widths: Sequence[int]) -> list[Coeffs]:
    cuts = np.cumsum([0, *widths])
    return [coeffs(m.data[:, cuts[k]:cuts[k + 1]]) for k in range(len(widths))]


def hstack(parts: Sequence[Coeffs], n_rows: int) -> Coeffs:
    return coeffs(np.concatenate([p.data for p in parts], axis=1)) if parts else zeros(n_rows, 0)


def concat(parts: Sequence[Coeffs]) -> Coeffs:
    """Stack vectors (1-D) or matrices (2-D, along rows)."""
    return coeffs(np.concatenate([p.data for p in parts], axis=0))


def block_diag(blocks: Sequence[Coeffs]) -> Coeffs:
    n = sum(b.shape[0] for b in blocks)
    out, off = zeros(n, n).data.copy(), 0
    for b in blocks:
        k = b.shape[0]
        out[off:off + k, off:off + k] = b.data
        off += k
    return coeffs(out)


def pad_rows(m: Coeffs, offset: int, n_rows: int) -> Coeffs:
    """m placed at rows offset.. of an n_rows-row zero matrix (vectors too)."""
    out = zeros(n_rows, *m.shape[1:]).data.copy()
    out[offset:offset + m.shape[0]] = m.data
    return coeffs(out)
