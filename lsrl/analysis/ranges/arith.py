"""Extended rationals (a Fraction or +-inf) and the helpers the range analysis computes with."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np

ZERO, ONE = Fraction(0), Fraction(1)
INF = math.inf


class _Empty(Exception):
    """An abstract value with no element (an empty row piece, or contradictory facts)."""


def _frac(x) -> Fraction:
    return x if isinstance(x, Fraction) else Fraction(x)


def _ext(x):
    """A domain bound as an extended rational."""
    if isinstance(x, float) and math.isinf(x):
        return x
    return _frac(x)


def _mul(c: Fraction, x):
    """c * x for rational c and extended x, with 0 * inf = 0."""
    if isinstance(x, float):
        return ZERO if c == 0 else (x if c > 0 else -x)
    return c * x


def _xmul(a, b):
    """a * b for extended a, b, with 0 * inf = 0."""
    if a == 0 or b == 0:
        return ZERO
    if isinstance(a, float) or isinstance(b, float):
        return INF if (a > 0) == (b > 0) else -INF
    return a * b


def _add(a, b):
    if isinstance(a, float):
        if isinstance(b, float) and b != a:
            raise ArithmeticError("inf - inf in range arithmetic")
        return a
    if isinstance(b, float):
        return b
    return a + b


def _gcd(a: Fraction, b: Fraction) -> Fraction:
    """gcd of rationals: the largest g with a/g, b/g integers (gcd(a, 0) = |a|)."""
    a, b = abs(a), abs(b)
    if a == 0:
        return b
    if b == 0:
        return a
    return Fraction(math.gcd(a.numerator * b.denominator, b.numerator * a.denominator),
                    a.denominator * b.denominator)


def _ceil_to(x, off: Fraction, step: Fraction):
    """The smallest lattice point >= x."""
    if isinstance(x, float):
        return x
    return off + step * math.ceil((x - off) / step)


def _floor_to(x, off: Fraction, step: Fraction):
    if isinstance(x, float):
        return x
    return off + step * math.floor((x - off) / step)


def _imul(alo, ahi, blo, bhi):
    ps = [_xmul(alo, blo), _xmul(alo, bhi), _xmul(ahi, blo), _xmul(ahi, bhi)]
    return min(ps), max(ps)


def _fmt(x) -> str:
    if isinstance(x, float):
        return "inf" if x > 0 else "-inf"
    if x.denominator == 1:
        return str(x.numerator)
    if x.denominator < 10 ** 6 and abs(x.numerator) < 10 ** 9:
        return f"{x.numerator}/{x.denominator}"
    return f"{float(x):.17g}"


def _up(x: float) -> Fraction:
    """An exact rational >= the float x (x finite, >= 0), with a little slack for our own rounding."""
    return Fraction(float(np.nextafter(x * (1 + 1e-9) + 1e-300, np.inf)))
