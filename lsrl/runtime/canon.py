"""Canonical JSON for checkpoints: sorted keys (but see _KEEP_ORDER), exact rationals as strings, no
platform-dependent text, so saving the same compiled program twice gives byte-identical files."""

from __future__ import annotations

import json
import math
import os
from fractions import Fraction

import numpy as np

from lsrl.ir.rational import RatArray

# Backend module configs may depend on key order (e.g. the order of `probes` is the order of the probe
# heads), so they keep the backend's (deterministic) order; every other object has its keys sorted.
_KEEP_ORDER = ("module_config",)


def _sorted(obj, keep: bool = False):
    if isinstance(obj, dict):
        items = obj.items() if keep else sorted(obj.items())
        return {k: _sorted(v, keep or k in _KEEP_ORDER) for k, v in items}
    if isinstance(obj, list):
        return [_sorted(v, keep) for v in obj]
    return obj


def _dumps(obj) -> bytes:
    """Canonical JSON: sorted keys (but see _KEEP_ORDER), 2-space indent, ASCII, trailing newline."""
    text = json.dumps(_sorted(obj), indent=2, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode()


def _num(x) -> float | str:
    """A coefficient as a JSON number (float64), non-finite values as strings."""
    f = float(x)
    return f + 0.0 if math.isfinite(f) else repr(f)


def _scalar(v) -> object:
    """A parameter/domain scalar: exact rationals as "p/q" strings ("3" when integral), floats as numbers."""
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    if isinstance(v, (float, np.floating)):
        return _num(v)
    if isinstance(v, np.ndarray):
        return [_scalar(x) for x in v.tolist()] if v.ndim else _scalar(v.item())
    if isinstance(v, (list, tuple)):
        return [_scalar(x) for x in v]
    if hasattr(v, "arr"):  # a frontend Const
        return _scalar(v.arr)
    return str(v)


def _rational(num, den: int) -> str:
    """One exact rational num/den as a reduced "p/q" string ("p" when integral)."""
    return _scalar(Fraction(int(num), int(den)))


def _exact(arr: RatArray) -> list:
    """An exact rational array as (nested) lists of "p/q" strings ("p" when integral)."""
    values, inverse = np.unique(arr.num, return_inverse=True)  # few distinct entries: each written once
    table = np.array([_rational(v, arr.den) for v in values.tolist()] or [""], dtype=object)
    return table[inverse.reshape(arr.num.shape)].tolist()


def _plain(obj):
    """A backend config made JSON-safe (numpy scalars/arrays to Python, tuples to lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    if isinstance(obj, Fraction):
        return _scalar(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"backend config holds a non-JSON value {obj!r}")


def _span(span) -> dict | None:
    if span is None:
        return None
    return {
        "file": os.path.basename(span.file),
        "line": span.line,
        "col": span.col,
        "end_line": span.end_line,
        "end_col": span.end_col,
    }
