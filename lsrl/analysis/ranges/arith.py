"""Extended rationals (an exact rational `Q` or +-inf) and the helpers the range analysis computes with."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
from gmpy2 import mpq as Q  # exact rationals, ~10x faster than Fraction (the analysis is arithmetic-bound)

ZERO, ONE = Q(0), Q(1)
INF = math.inf


class _Empty(Exception):
    """An abstract value with no element (an empty row piece, or contradictory facts)."""


def _frac(x) -> Q:
    """x (an int, numpy integer, float, Fraction or Q) as an exact Q."""
    if isinstance(x, Q):
        return x
    return Q(int(x)) if isinstance(x, np.integer) else Q(x)


def to_fraction(x):
    """A Q (or +-inf, kept) as the Fraction the analysis's results are given in."""
    return Fraction(int(x.numerator), int(x.denominator)) if isinstance(x, Q) else x


def _fractions(values: tuple | None) -> tuple | None:
    return None if values is None else tuple(to_fraction(v) for v in values)


def _ext(x):
    """A domain bound as an extended rational."""
    if isinstance(x, float) and math.isinf(x):
        return x
    return _frac(x)


def _mul(c: Q, x):
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


def _gcd(a: Q, b: Q) -> Q:
    """gcd of rationals: the largest g with a/g, b/g integers (gcd(a, 0) = |a|)."""
    a, b = abs(a), abs(b)
    if a == 0:
        return b
    if b == 0:
        return a
    return Q(math.gcd(a.numerator * b.denominator, b.numerator * a.denominator),
                    a.denominator * b.denominator)


def _ceil_to(x, off: Q, step: Q):
    """The smallest lattice point >= x."""
    if isinstance(x, float):
        return x
    return off + step * math.ceil((x - off) / step)


def _floor_to(x, off: Q, step: Q):
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


def _up(x: float) -> Q:
    """An exact rational >= the float x (x finite, >= 0), with a little slack for our own rounding."""
    return Q(float(np.nextafter(x * (1 + 1e-9) + 1e-300, np.inf)))


def _connected(keys) -> list[list[int]]:
    """Items grouped so that two items sharing a key are in one group (connected components, by union-find):
    per group its item indices in increasing order, groups in the order of their first item."""
    parent = list(range(len(keys)))

    def find(i):
        while parent[i] != i:
            parent[i] = parent[parent[i]]
            i = parent[i]
        return i

    owner: dict = {}
    for i, ks in enumerate(keys):
        for k in ks:
            parent[find(i)] = find(owner.setdefault(k, i))
    groups: dict[int, list[int]] = {}
    for i in range(len(keys)):
        groups.setdefault(find(i), []).append(i)
    return list(groups.values())
