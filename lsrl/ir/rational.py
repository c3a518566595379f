"""Exact rational arrays as integer numerators over one common denominator: fast exact weight algebra."""

from __future__ import annotations

import math
import mmap
from dataclasses import dataclass
from fractions import Fraction
from math import gcd, lcm, prod

import numpy as np

from lsrl.cached import cached

_SAFE = 2**62  # int64 arithmetic on values below this (times the checked factors) cannot overflow
_FLOAT_EXACT = 2**53  # integers of at most this size are exact float64 values
_HUGE = 1 << 22  # numpy asks the kernel for 2 MiB huge pages for arrays of this many bytes and more


def _ratio(v) -> tuple[int, int]:
    """(numerator, denominator) of an exact rational or a float (every finite float is a dyadic rational)."""
    if isinstance(v, float | np.floating):
        return float(v).as_integer_ratio()
    return int(v.numerator), int(v.denominator)


def _ratios(vals: np.ndarray) -> tuple[list[int], list[int]]:
    """(numerators, denominators) of exact rationals and floats; the floats' in one vectorised pass."""
    is_float = np.fromiter((type(v) is float for v in vals), bool, len(vals))
    nums, dens = [0] * len(vals), [1] * len(vals)
    for k in np.flatnonzero(~is_float).tolist():
        nums[k], dens[k] = _ratio(vals[k])
    m, e = _dyadic(vals[is_float].astype(np.float64))
    for k, mk, ek in zip(np.flatnonzero(is_float).tolist(), m.tolist(), e.tolist(), strict=True):
        nums[k], dens[k] = (mk << ek, 1) if ek >= 0 else (mk, 1 << -ek)
    return nums, dens


def _dyadic(f: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(m, e) with f = m 2^e exactly in lowest terms (m odd, or 0 with e = 0), as int64 arrays: every finite
    float is an integer of 53 bits times a power of two. A non-finite entry raises as float.as_integer_ratio."""
    if f.size and not np.isfinite(f).all():
        float(f[~np.isfinite(f)][0]).as_integer_ratio()
    m, e = np.frexp(f)
    m, e = (m * 2.0**53).astype(np.int64), e.astype(np.int64) - 53
    tz = _trailing_zeros(m)
    return m >> tz, np.where(m == 0, 0, e + tz)


def float_of(n: int, d: int) -> float:
    """n / d correctly rounded (Python's int division is), +-inf past float64's range (as numpy's would be)."""
    try:
        return n / d
    except OverflowError:
        return math.inf if n > 0 else -math.inf


def _trailing_zeros(m: np.ndarray) -> np.ndarray:
    """The number of trailing zero bits of each nonzero int64 (0 for 0)."""
    low = (m & -m).astype(np.float64)  # the lowest set bit, exactly a power of two
    return np.where(m == 0, 0, np.frexp(low)[1] - 1).astype(np.int64)


def _max_abs(num: np.ndarray) -> int:
    if num.size <= 16:  # most weight-algebra operands are tiny: Python ints beat two numpy calls there
        return max(map(abs, num.ravel().tolist()), default=0)
    # the ufuncs' reduce directly: ndarray.max/min add a Python wrapper that costs more than the reduction
    return max(int(np.maximum.reduce(num, axis=None)), -int(np.minimum.reduce(num, axis=None)))


def int_dtype(values) -> type:
    """np.int64 for integers that all fit with room to spare, else object (Python ints); np.array would pick
    uint64 or even float64 for some mixes of large and negative values."""
    return object if max(map(abs, values), default=0) >= _SAFE else np.int64


def _narrow(num: np.ndarray) -> np.ndarray:
    """int64 when every numerator fits with room to spare, else an object array of Python ints."""
    if num.dtype == np.int64:
        return num
    return num.astype(np.int64) if _max_abs(num) < _SAFE else num


def _zeros(shape: tuple[int, ...], dtype) -> np.ndarray:
    """np.zeros, but a large int64 array in a private anonymous mapping, whose pages materialise only where an
    entry is written (reads of the rest see the kernel's zero page): numpy asks for huge pages, where writing the
    few nonzeros of a large mostly-zero stage matrix would zero (and keep) nearly all of it (seconds and
    gigabytes per stage at tok2tok's T = 64)."""
    size = prod(shape) * 8
    if dtype is object or size < _HUGE or not hasattr(mmap, "MAP_ANONYMOUS"):
        return np.zeros(shape, dtype=dtype)
    buf = mmap.mmap(-1, size, flags=mmap.MAP_PRIVATE | mmap.MAP_ANONYMOUS)
    return np.frombuffer(buf, dtype=np.int64).reshape(shape)


def _int_matmul(a: np.ndarray, b: np.ndarray, amax: int, bmax: int, fits: bool) -> np.ndarray:
    """Exact a @ b of integer arrays (int64, or Python ints in object arrays) with |a| <= amax, |b| <= bmax;
    int64 out when `fits` (every partial sum provably below 2^62), else Python ints. numpy's integer and
    object matmuls have no BLAS and visit every zero (seconds per gru stage of tok2tok at T = 64): a mostly-zero
    factor is multiplied over its nonzeros, anything else as exact float64 BLAS products of w-bit slices of
    the entries (|slice product sums| < 2^53), shifted and added up."""
    out_t = np.int64 if fits else object
    if a.ndim != 2 or b.ndim != 2 or a.shape[0] * a.shape[1] * b.shape[1] < 1 << 15:
        return np.asarray(a.astype(out_t) @ b.astype(out_t))
    if np.count_nonzero(a) * 8 <= a.size:
        return _sparse_rows(a.astype(out_t), b.astype(out_t))
    if np.count_nonzero(b) * 8 <= b.size:
        return _sparse_rows(b.T.astype(out_t), a.T.astype(out_t)).T
    w = (53 - max(a.shape[1], 1).bit_length()) // 2  # |slice of a| |slice of b| k < 2^(2w + bits(k)) <= 2^53
    out = np.zeros((a.shape[0], b.shape[1]), dtype=out_t)
    bs = _slices(b, bmax, w)
    for i, sa in enumerate(_slices(a, amax, w)):
        for j, sb in enumerate(bs):
            part = (sa @ sb).astype(np.int64)
            out += (part << (w * (i + j))) if fits else part.astype(object) * (1 << (w * (i + j)))
    return out


def _sparse_product(a: np.ndarray, b: np.ndarray, bound: int) -> np.ndarray | None:
    """Exact a @ b (2-D int64 arrays, every partial sum of magnitude below `bound`) over the pairs of nonzeros
    that meet, a[i, k] b[k, j], or None when those are not far fewer than a dense product's m k n (stage and
    mixing matrices of wide layers are mostly zeros: their dense products grow as width^3)."""
    ai, ak = np.nonzero(a)
    bk, bj = np.nonzero(b)  # row-major: sorted by k
    lo, hi = np.searchsorted(bk, ak, "left"), np.searchsorted(bk, ak, "right")
    counts = hi - lo
    total = int(counts.sum())
    if total * 64 > a.shape[0] * a.shape[1] * b.shape[1]:  # (BLAS does ~64 products in a gathered one's time)
        return None
    first = np.repeat(lo - np.cumsum(counts) + counts, counts) + np.arange(total)  # each pair's b nonzero
    rows, cols = np.repeat(ai, counts), bj[first]
    n = b.shape[1]
    flat = rows * n + cols
    if bound < _FLOAT_EXACT:  # products and sums are integers below 2^53: float64 accumulation is exact
        vals = np.repeat(a[ai, ak], counts) * b[bk[first], cols]
        out = np.bincount(flat, weights=vals.astype(np.float64), minlength=a.shape[0] * n).astype(np.int64)
    else:
        out_t = np.int64 if bound < _SAFE else object
        vals = np.repeat(a[ai, ak].astype(out_t), counts) * b[bk[first], cols].astype(out_t)
        out = np.zeros(a.shape[0] * n, dtype=out_t)
        np.add.at(out, flat, vals)
    return out.reshape(a.shape[0], n)


def _slices(x: np.ndarray, xmax: int, w: int) -> list[np.ndarray]:
    """x = sum_i s_i 2^(w i) with |s_i| < 2^w (each slice carries x's sign), as float64 arrays."""
    sign, mag = np.sign(x), np.abs(x)
    out = []
    for i in range(max(1, -(-xmax.bit_length() // w))):
        out.append((sign * ((mag >> (w * i)) & ((1 << w) - 1))).astype(np.float64))
    return out


def _sparse_rows(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b over the nonzeros of a (same integer dtype for both)."""
    out = np.zeros((a.shape[0], b.shape[1]), dtype=a.dtype)
    rows, cols = np.nonzero(a)
    step = max(1, (1 << 22) // max(b.shape[1], 1))  # at most ~4M partial products in memory at once
    for s in range(0, len(rows), step):
        r, c = rows[s:s + step], cols[s:s + step]
        np.add.at(out, r, a[r, c][:, None] * b[c])
    return out


@dataclass(frozen=True, eq=False)
class RatArray:
    """value = num / den exactly; num is int64 where that cannot overflow, else Python ints (object)."""

    num: np.ndarray
    den: int = 1
    identity: bool = False  # made by `eye`: products with it return the other factor

    @classmethod
    def eye(cls, n: int) -> RatArray:
        return cls(np.eye(n, dtype=np.int64), 1, True)

    @classmethod
    def of(cls, data) -> RatArray:
        """From Coeffs, an integer array, or an object array of Fraction/int/float entries."""
        # a Coeffs' entries are its .data (a numpy array's .data is its raw buffer: not that)
        arr = np.asarray(data if isinstance(data, np.ndarray) else getattr(data, "data", data))
        if arr.dtype.kind in "iub":
            return cls(_narrow(arr.astype(object)) if arr.dtype == np.uint64 else arr.astype(np.int64))
        nz = np.flatnonzero(arr)  # weight matrices are mostly zeros, which need no numerator
        vals = arr.reshape(-1)[nz]
        if set(map(type, vals)) <= {Fraction, int}:  # the common case, without _ratio's per-entry dispatch
            nums, dens = [v.numerator for v in vals], [v.denominator for v in vals]
        else:
            nums, dens = _ratios(vals)
        return cls._placed(arr.shape, nz, nums, dens)

    @classmethod
    def from_entries(cls, shape: tuple[int, ...], entries: dict) -> RatArray:
        """The array with these exact entries ({index tuple: Fraction or int}), zero elsewhere."""
        if len(shape) == 2:  # row-major flat positions; plain Python beats numpy's call overhead on a few entries
            n = shape[1]
            flat = [i * n + j for i, j in entries]
        else:
            flat = [i for (i,) in entries]
        vals = entries.values()
        return cls._placed(shape, flat, [v.numerator for v in vals], [v.denominator for v in vals])

    @classmethod
    def _placed(cls, shape: tuple[int, ...], flat: np.ndarray | list[int], nums: list, dens: list) -> RatArray:
        """Zeros of `shape` with nums[i] / dens[i] at flat index flat[i], over one common denominator."""
        den = lcm(*set(dens)) if dens else 1
        if den != 1:  # reduced over the entries, not over the whole (mostly zero) array
            nums = [n * (den // d) for n, d in zip(nums, dens, strict=True)]
            g = gcd(den, *nums)
            nums, den = [n // g for n in nums], den // g
        num = _zeros(shape, int_dtype(nums))
        num.reshape(-1)[flat] = nums
        return cls(num, den)

    @classmethod
    def normal(cls, num: np.ndarray, den: int = 1) -> RatArray:
        """num / den from any integer array (int64 or Python ints), in the form every constructor leaves:
        int64 where safe, lowest terms."""
        return cls(_narrow(num) if num.dtype == object else num.astype(np.int64), den)._reduced()

    @classmethod
    def zeros(cls, *shape: int) -> RatArray:
        return cls(np.zeros(shape, dtype=np.int64))

    @classmethod
    def of_floats(cls, f: np.ndarray) -> RatArray:
        """The exact values of finite float64s, over their largest power-of-two denominator."""
        m, e = _dyadic(np.asarray(f, dtype=np.float64))
        low = min(int(e.min(initial=0)), 0)
        shift = e - low  # value = m 2^shift / 2^-low, shift >= 0
        if int(shift.max(initial=0)) < 62 - 53:
            return cls.normal(m << shift, 1 << -low)
        num = np.array([mk << sk for mk, sk in zip(m.reshape(-1).tolist(), shift.reshape(-1).tolist(), strict=True)],
                       dtype=object).reshape(m.shape)
        return cls.normal(num, 1 << -low)

    def where(self, mask: np.ndarray, other: RatArray) -> RatArray:
        """`other`'s entries where `mask` is set, this array's elsewhere (numpy broadcasting)."""
        (a, b), den = RatArray.common([self, other])
        return RatArray.normal(np.where(mask, b, a), den)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.num.shape

    @cached
    def max_num(self) -> int:
        """The largest |numerator| (kept: an array is often a factor of several products)."""
        return _max_abs(self.num)

    def _reduced(self) -> RatArray:
        if self.den == 1:
            return self
        flat = self.num.reshape(-1)
        if not flat.any():
            return RatArray(self.num, 1)
        g = gcd(self.den, int(np.gcd.reduce(flat)) if flat.dtype == np.int64 else gcd(*map(int, flat)))
        return self if g == 1 else RatArray(_narrow(self.num // g), self.den // g)

    def numerators_over(self, den: int) -> np.ndarray:
        """Numerators over a multiple `den` of this denominator."""
        k = den // self.den
        if k == 1:
            return self.num
        if self.num.dtype == np.int64 and k < _SAFE and self.max_num * k < _SAFE:
            return self.num * k
        return self.num.astype(object) * k

    def __matmul__(self, other: RatArray) -> RatArray:
        if self.identity and other.num.ndim and other.shape[0] == self.shape[1]:
            return other
        if other.identity and self.num.ndim and self.shape[-1] == other.shape[0]:
            return self
        a, b = self.num, other.num
        k = max(a.shape[-1], 1) if a.ndim else 1
        bound = self.max_num * other.max_num * k
        small = self.max_num < _SAFE and other.max_num < _SAFE  # (a zero factor makes any bound 0)
        large = a.ndim == b.ndim == 2 and a.shape[0] * a.shape[1] * b.shape[1] >= 1 << 18
        prod = _sparse_product(a, b, bound) if large and a.dtype == b.dtype == np.int64 else None
        if prod is None and bound < _FLOAT_EXACT and small:  # partial sums below 2^53: float64 BLAS is exact
            prod = (a.astype(np.float64) @ b.astype(np.float64)).astype(np.int64)
        elif prod is None:
            prod = _int_matmul(a, b, self.max_num, other.max_num, bound < _SAFE and small)
        return RatArray(_narrow(prod), self.den * other.den)._reduced()

    def __add__(self, other: RatArray) -> RatArray:
        den = lcm(self.den, other.den)
        a, b = self.numerators_over(den), other.numerators_over(den)
        if a.dtype == b.dtype == np.int64 and _max_abs(a) + _max_abs(b) < _SAFE:
            return RatArray(a + b, den)._reduced()
        return RatArray(_narrow(a.astype(object) + b.astype(object)), den)._reduced()

    def __mul__(self, other: RatArray) -> RatArray:
        """The elementwise product (numpy broadcasting)."""
        if self.max_num < _SAFE and other.max_num < _SAFE and self.max_num * other.max_num < _SAFE:
            num = self.num.astype(np.int64) * other.num.astype(np.int64)
        else:
            num = _narrow(self.num.astype(object) * other.num.astype(object))
        return RatArray(num, self.den * other.den)._reduced()

    def relu(self) -> RatArray:
        """max(entry, 0) (the denominator is positive)."""
        return RatArray(np.maximum(self.num, 0), self.den)._reduced()

    def equals(self, other: RatArray) -> bool:
        """The same shape and exactly the same values, whatever the two denominators."""
        if self.shape != other.shape:
            return False
        den = lcm(self.den, other.den)
        return bool((self.numerators_over(den) == other.numerators_over(den)).all())

    def __neg__(self) -> RatArray:
        return RatArray(-self.num, self.den)

    def __getitem__(self, index) -> RatArray:
        return RatArray(self.num[index], self.den)

    @property
    def T(self) -> RatArray:  # noqa: N802 - conventional name
        return RatArray(self.num.T, self.den)

    def block(self, rows, cols) -> RatArray:
        """The submatrix on these rows and columns (reduced, as every other constructor leaves it)."""
        return RatArray(_narrow(self.num[np.asarray(rows)[:, None], cols]), self.den)._reduced()

    @staticmethod
    def common(parts: list[RatArray]) -> tuple[list[np.ndarray], int]:
        """The parts' numerators over one denominator (all object arrays if any part needs Python ints)."""
        den = lcm(*(p.den for p in parts))
        nums = [p.numerators_over(den) for p in parts]
        if any(n.dtype == object for n in nums):
            nums = [n.astype(object) for n in nums]
        return nums, den

    @staticmethod
    def concat(parts: list[RatArray], axis: int = 0) -> RatArray:
        nums, den = RatArray.common(parts)
        return RatArray(_narrow(np.concatenate(nums, axis=axis)), den)._reduced()

    def to_float(self) -> np.ndarray:
        """float64 entries, each the correctly rounded value of its rational."""
        if self.num.dtype == np.int64 and self.max_num <= _FLOAT_EXACT and self.den <= _FLOAT_EXACT:
            return self.num.astype(np.float64) / self.den  # both exact: IEEE division rounds correctly
        if self.den & (self.den - 1) == 0 and (self.num.dtype == np.int64 or self.max_num < 2**1023):
            # a power of two (tanh scales, products of floats): int -> float64 is correctly rounded (numpy's
            # and Python's), and scaling by a power of two is exact unless the result is subnormal
            out = np.ldexp(self.num.astype(np.float64), -(self.den.bit_length() - 1))
            small = np.abs(out) < 2.0**-1022
            if not (small & (self.num != 0)).any():
                return out
        flat = [float_of(int(n), self.den) for n in self.num.reshape(-1)]
        return np.array(flat, dtype=np.float64).reshape(self.shape)

    def to_fractions(self) -> np.ndarray:
        """An object array of Fractions; each distinct value is built once (a tiny array's entries directly:
        np.unique's overhead is most of a 1 x 1 block's cost, and plans ask for thousands of them)."""
        if self.num.size <= 16:
            out = np.empty(self.shape, dtype=object)
            out.reshape(-1)[:] = [Fraction(int(v), self.den) for v in self.num.reshape(-1).tolist()]
            return out
        values, inverse = np.unique(self.num, return_inverse=True)
        table = np.empty(len(values), dtype=object)
        table[:] = [Fraction(int(v), self.den) for v in values]
        return table[inverse.reshape(-1)].reshape(self.shape)
