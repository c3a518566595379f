"""Exact coefficient helpers for rewrites. Exact operands are handled as RatArrays (integer numerators over one
denominator: numpy work, no per-entry Fractions); a float entry (an inexact constant) takes the object-array path,
where every result is re-normalised so integers become Fractions."""

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


def _exact(*parts: Coeffs) -> bool:
    return all(p.exact for p in parts)


def _rat(num: np.ndarray, den: int) -> Coeffs:
    return Coeffs.from_rat(RatArray.normal(num, den))


def zeros(*shape: int) -> Coeffs:
    return Coeffs.zeros(*shape)


def matmul(a: Coeffs, b: Coeffs) -> Coeffs:
    return a @ b


def add(a: Coeffs, b: Coeffs) -> Coeffs:
    return a + b


def diag(v: Coeffs) -> Coeffs:
    return Coeffs.diag(v.data)


def columns(m: Coeffs, indices: Sequence[int], width: int) -> Coeffs:
    """m @ P where P (len(indices) x width) selects `indices`: column j of m lands in column indices[j]."""
    if m.exact:
        num = m.rat.num.astype(object) if len(set(indices)) < len(indices) else m.rat.num  # sums: Python ints
        out = np.zeros((m.shape[0], width), dtype=num.dtype)
        np.add.at(out, (slice(None), np.asarray(indices, dtype=np.intp)), num)
        return _rat(out, m.rat.den)
    out = zeros(m.shape[0], width).data.copy()
    for j, i in enumerate(indices):
        out[:, i] = out[:, i] + m.data[:, j]
    return coeffs(out)


def rows(m: Coeffs, indices: Sequence[int]) -> Coeffs:
    if m.exact:
        return _rat(m.rat.num[list(indices)], m.rat.den)
    return coeffs(m.data[list(indices)])


def split_columns(m: Coeffs, widths: Sequence[int]) -> list[Coeffs]:
    cuts = np.cumsum([0, *widths])
    if m.exact:
        return [_rat(m.rat.num[:, cuts[k]:cuts[k + 1]], m.rat.den) for k in range(len(widths))]
    return [coeffs(m.data[:, cuts[k]:cuts[k + 1]]) for k in range(len(widths))]


def hstack(parts: Sequence[Coeffs], n_rows: int) -> Coeffs:
    if not parts:
        return zeros(n_rows, 0)
    if _exact(*parts):
        return Coeffs.from_rat(RatArray.concat([p.rat for p in parts], axis=1))
    return coeffs(np.concatenate([p.data for p in parts], axis=1))


def concat(parts: Sequence[Coeffs]) -> Coeffs:
    """Stack vectors (1-D) or matrices (2-D, along rows)."""
    if _exact(*parts):
        return Coeffs.from_rat(RatArray.concat([p.rat for p in parts]))
    return coeffs(np.concatenate([p.data for p in parts], axis=0))


def block_diag(blocks: Sequence[Coeffs]) -> Coeffs:
    n = sum(b.shape[0] for b in blocks)
    if _exact(*blocks):
        nums, den = RatArray.common([b.rat for b in blocks])
        out, off = np.zeros((n, n), dtype=nums[0].dtype if nums else np.int64), 0
        for b in nums:
            out[off:off + b.shape[0], off:off + b.shape[0]] = b
            off += b.shape[0]
        return _rat(out, den)
    out, off = zeros(n, n).data.copy(), 0
    for b in blocks:
        k = b.shape[0]
        out[off:off + k, off:off + k] = b.data
        off += k
    return coeffs(out)


def pad_rows(m: Coeffs, offset: int, n_rows: int) -> Coeffs:
    """m placed at rows offset.. of an n_rows-row zero matrix (vectors too)."""
    if m.exact:
        out = np.zeros((n_rows, *m.shape[1:]), dtype=m.rat.num.dtype)
        out[offset:offset + m.shape[0]] = m.rat.num
        return _rat(out, m.rat.den)
    out = zeros(n_rows, *m.shape[1:]).data.copy()
    out[offset:offset + m.shape[0]] = m.data
    return coeffs(out)
