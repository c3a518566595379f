"""Coefficient helpers for rewrites, on exact values (RatArrays: integer numerators over one denominator, numpy
work, no per-entry Fractions) and the masks of float entries (inexact constants), which move with their values."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from lsrl.ir.coeffs import Coeffs, obj_array
from lsrl.ir.rational import RatArray


def coeffs(data) -> Coeffs:
    """Coeffs from any array-like; unlike Coeffs(object array) it makes stray ints (numpy's 0) Fractions. An
    integer array is taken as it is (a RatArray), with no per-entry conversion."""
    arr = data if isinstance(data, np.ndarray) else np.asarray(data)
    if arr.dtype.kind in "iub" and arr.ndim in (1, 2):
        return Coeffs.from_rat(RatArray.normal(arr.astype(np.int64)))
    return Coeffs(obj_array(data))


def _arranged(parts: Sequence[Coeffs], arrange) -> Coeffs:
    """`arrange` (a function of a list of same-kind arrays) applied to the parts' numerators over a common
    denominator and to their float masks alike: entries move, none is computed."""
    nums, den = RatArray.common([p.rat for p in parts])
    floats = None
    if not all(p.exact for p in parts):
        floats = arrange([p.float_mask for p in parts])
    return Coeffs.from_rat(RatArray.normal(arrange(nums), den), floats)


def zeros(*shape: int) -> Coeffs:
    return Coeffs.zeros(*shape)


def matmul(a: Coeffs, b: Coeffs) -> Coeffs:
    return a @ b


def add(a: Coeffs, b: Coeffs) -> Coeffs:
    return a + b


def diag(v: Coeffs) -> Coeffs:
    return Coeffs.diag(v)


def columns(m: Coeffs, indices: Sequence[int], width: int) -> Coeffs:
    """m @ P where P (len(indices) x width) selects `indices`: column j of m lands in column indices[j] (repeats
    add up; an entry a float lands in is a float, its exact sum rounded once)."""
    P = Coeffs.ones_at((len(indices), width), range(len(indices)), indices)
    if m.exact:
        return m @ P
    return Coeffs.rounded(m.rat @ P.rat, (m.floats.astype(np.int64) @ P.rat.num) > 0)


def rows(m: Coeffs, indices: Sequence[int]) -> Coeffs:
    return _arranged([m], lambda a: a[0][list(indices)])


def split_columns(m: Coeffs, widths: Sequence[int]) -> list[Coeffs]:
    cuts = np.cumsum([0, *widths])
    return [_arranged([m], lambda a, k=k: a[0][:, cuts[k]:cuts[k + 1]]) for k in range(len(widths))]


def hstack(parts: Sequence[Coeffs], n_rows: int) -> Coeffs:
    if not parts:
        return zeros(n_rows, 0)
    return _arranged(parts, lambda a: np.concatenate(a, axis=1))


def concat(parts: Sequence[Coeffs]) -> Coeffs:
    """Stack vectors (1-D) or matrices (2-D, along rows)."""
    return _arranged(parts, lambda a: np.concatenate(a, axis=0))


def block_diag(blocks: Sequence[Coeffs]) -> Coeffs:
    n = sum(b.shape[0] for b in blocks)

    def place(arrays: list[np.ndarray]) -> np.ndarray:
        out, off = np.zeros((n, n), dtype=arrays[0].dtype if arrays else np.int64), 0
        for b in arrays:
            out[off:off + b.shape[0], off:off + b.shape[0]] = b
            off += b.shape[0]
        return out
    return _arranged(blocks, place)


def pad_rows(m: Coeffs, offset: int, n_rows: int) -> Coeffs:
    """m placed at rows offset.. of an n_rows-row zero matrix (vectors too)."""
    def place(a: list[np.ndarray]) -> np.ndarray:
        out = np.zeros((n_rows, *m.shape[1:]), dtype=a[0].dtype)
        out[offset:offset + m.shape[0]] = a[0]
        return out
    return _arranged([m], place)
