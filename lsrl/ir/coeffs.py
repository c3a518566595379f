"""Immutable coefficient arrays whose entries stay exact rationals (Fraction) until weights are emitted."""

from __future__ import annotations

import math
from fractions import Fraction
from functools import lru_cache
from numbers import Rational

import numpy as np

from lsrl.cached import cached
from lsrl.ir.rational import RatArray, float_of

Scalar = Fraction | float


def to_scalar(x) -> Scalar:
    """Normalise a Python/numpy number: rationals become Fraction, anything else float."""
    if isinstance(x, Fraction):
        return x
    if isinstance(x, (bool, np.bool_)):
        return Fraction(int(x))
    if isinstance(x, (int, np.integer, Rational)):
        return Fraction(int(x)) if isinstance(x, (int, np.integer)) else Fraction(x)
    return float(x)


_NORMAL = {Fraction, float}  # entry types that to_scalar leaves as they are
_ONE = Fraction(1)


def obj_array(data) -> np.ndarray:
    """An object array of normalised scalars (0-, 1- or 2-D)."""
    arr = np.array(data, dtype=object)
    if _NORMAL.issuperset(map(type, arr.reshape(-1))):  # the usual case: Fractions from exact algebra
        return arr
    flat = [to_scalar(v) for v in arr.reshape(-1)]
    out = np.empty(arr.shape, dtype=object)
    if flat:
        out.reshape(-1)[:] = flat
    return out


def format_scalar(v: Scalar) -> str:
    if isinstance(v, Fraction | int):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    return repr(float(v))


def _small_matmul(a: np.ndarray, b: np.ndarray) -> list | np.ndarray:
    """a @ b (1-D or 2-D object arrays, as numpy would shape it) as nested lists, for a few products."""
    if not (a.size and b.size):  # empty: numpy's shape (and zeros for empty sums)
        return a @ b
    A = a.tolist() if a.ndim == 2 else [a.tolist()]
    B = b.tolist() if b.ndim == 2 else [[x] for x in b.tolist()]
    out = [[sum((r[t] * B[t][j] for t in range(1, len(r))), r[0] * B[0][j]) for j in range(len(B[0]))] for r in A]
    if b.ndim == 1:
        out = [row[0] for row in out]
    return out[0] if a.ndim == 1 else out


def _rat_key(r: RatArray) -> tuple:
    """A hashable identity of the values of `r`: lowest terms (unique), int64 numerators as bytes."""
    r = RatArray.normal(r.num, r.den)
    return r.den, r.num.tobytes() if r.num.dtype == np.int64 else tuple(r.num.reshape(-1).tolist())


class Coeffs:
    """A read-only 1-D or 2-D array of exact (Fraction; int in lowered stage matrices) or float entries,
    hashable by value. Two forms of the same values: `data`, the object array of entries, and (`rat`, `floats`),
    every entry's exact value (a float's is the dyadic rational it is) and where the floats (inexact constants)
    are. One built from the latter (`from_rat`, `from_entries`, all algebra) makes `data` only when asked."""

    def __init__(self, data):
        arr = data if isinstance(data, np.ndarray) and data.dtype == object else obj_array(data)
        if arr.ndim not in (1, 2):
            raise ValueError(f"coefficients must be 1-D or 2-D, got shape {arr.shape}")
        arr = arr.copy()
        arr.flags.writeable = False
        self.data = arr

    @classmethod
    def from_entries(cls, shape: tuple[int, ...], entries: dict[tuple[int, ...], Scalar | int]) -> Coeffs:
        """The array with these entries ({index: value}), zero elsewhere. Lowering writes its mostly-zero
        stage matrices this way: an exact one becomes a RatArray from its few entries, with no pass over the
        zeros (a per-entry Python conversion of the dense array costs more than everything after it)."""
        if len(shape) not in (1, 2):
            raise ValueError(f"coefficients must be 1-D or 2-D, got shape {shape}")
        vals = list(entries.values())
        if not set(map(type, vals)) <= {Fraction, int}:  # float entries: inexact constants keep float arithmetic
            arr = np.zeros(shape, dtype=object)
            for k, v in entries.items():
                arr[k] = v
            return cls(arr)
        c = cls.from_rat(RatArray.from_entries(shape, entries))
        keys = np.array([k for k, v in entries.items() if v], dtype=np.intp).reshape(-1, len(shape))
        c.nonzero = tuple(keys[np.lexsort(keys.T[::-1])].T)  # row-major, as np.nonzero lists them
        return c

    @classmethod
    def from_rat(cls, rat: RatArray, floats: np.ndarray | None = None) -> Coeffs:
        """The array of values `rat`, kept as it is, with floats (inexact constants) where the mask `floats` is
        set (their values in `rat` must be float64 values): `data` is built only if something asks for it."""
        if rat.num.ndim not in (1, 2):
            raise ValueError(f"coefficients must be 1-D or 2-D, got shape {rat.shape}")
        c = cls.__new__(cls)
        c.rat = rat
        if floats is not None and floats.any():
            floats = np.array(floats, dtype=bool)
            floats.flags.writeable = False
            c.floats, c.exact = floats, False
        else:
            c.floats, c.exact = None, True
        return c

    @classmethod
    def rounded(cls, exact: RatArray, floats: np.ndarray) -> Coeffs:
        """Results of exact arithmetic: `exact` where `floats` is clear; where set (a float took part: an inexact
        constant), each value rounded once to a float (correctly rounded, whatever the summation order)."""
        if not floats.any():
            return cls.from_rat(exact)
        f = np.where(floats, exact.to_float(), 0.0)
        if not np.isfinite(f).all():
            raise OverflowError("an inexact (float) coefficient beyond float64's range")
        return cls.from_rat(exact.where(floats, RatArray.of_floats(f)), floats)

    @cached
    def data(self) -> np.ndarray:  # only reached by a Coeffs made from_rat (__init__ sets it)
        arr = self.rat.to_fractions()
        if self.floats is not None:  # (float64 entries land as Python floats)
            arr[self.floats] = self.rat.to_float()[self.floats]
        arr.flags.writeable = False
        return arr

    @cached
    def floats(self) -> np.ndarray | None:
        """Where the entries are floats, or None if none is (reached by a Coeffs built from `data`)."""
        flat = self.data.reshape(-1)
        mask = np.fromiter((type(v) is float for v in flat), bool, len(flat)).reshape(self.data.shape)
        if not mask.any():
            return None
        mask.flags.writeable = False
        return mask

    @property
    def float_mask(self) -> np.ndarray:
        """`floats` as an array even when there are none (all False): for algebra that combines masks."""
        return np.zeros(self.shape, dtype=bool) if self.floats is None else self.floats

    @cached
    def _key(self) -> tuple:
        """The value identity, built on first comparison or hash only: an exact array's lowest-terms integer
        numerators (bytes when int64) and denominator, which hash far faster than its Fractions; an array
        with float entries (inexact constants) also where they are (their values are in the numerators), so it
        never equals an exact one."""
        if self.exact:
            return self.shape, _rat_key(self.rat)
        return self.shape, self.floats.tobytes(), _rat_key(self.rat)

    # construction helpers
    @classmethod
    @lru_cache(maxsize=128)  # immutable, and asked for over and over (each materialized value's form)
    def eye(cls, n: int) -> Coeffs:
        return cls.from_rat(RatArray.eye(n))

    @classmethod
    @lru_cache(maxsize=128)
    def zeros(cls, *shape: int) -> Coeffs:
        return cls.from_rat(RatArray.zeros(*shape))

    @classmethod
    def diag(cls, vec) -> Coeffs:
        """The square matrix with `vec` (a Coeffs, or entries as obj_array takes them) on its diagonal, from its
        exact values (an n x n elementwise scaling of a one-hot costs no n^2 Fractions)."""
        v = vec if isinstance(vec, Coeffs) else Coeffs(obj_array(vec))
        floats = None if v.floats is None else np.diag(v.floats)
        return cls.from_rat(RatArray.normal(np.diag(v.rat.num), v.rat.den), floats)

    @classmethod
    def ones_at(cls, shape: tuple[int, int], rows, cols) -> Coeffs:
        """Zeros with a 1 at each (rows[i], cols[i]): a placement or selection matrix."""
        out = np.zeros(shape, dtype=np.int64)
        out[list(rows), list(cols)] = 1
        return cls.from_rat(RatArray(out))

    @classmethod
    def ones(cls, *shape: int) -> Coeffs:
        return cls(np.full(shape, _ONE, dtype=object))

    # properties
    @cached  # asked for constantly by rewrite rules; once cached, a plain attribute lookup
    def shape(self) -> tuple[int, ...]:
        return self.data.shape if "data" in self.__dict__ else self.rat.shape

    @cached
    def exact(self) -> bool:
        return self.floats is None

    @cached
    def f64(self) -> np.ndarray:
        if "data" not in self.__dict__:  # from_rat: the same correctly rounded values, from the RatArray
            out = self.rat.to_float()
            out.flags.writeable = False
            return out
        # n / d is correctly rounded, as float(Fraction) is, without its generic numbers.Rational dispatch
        flat = self.data.reshape(-1)
        out = np.fromiter((float_of(v.numerator, v.denominator) if type(v) is Fraction else v for v in flat),
                          np.float64, len(flat)).reshape(self.data.shape)
        out.flags.writeable = False
        return out

    @cached
    def nonzero(self) -> tuple[np.ndarray, ...]:
        """np.nonzero of the entries; one made from_entries knows them without a pass over its zeros."""
        return np.nonzero(self.rat.num if self.exact or "data" not in self.__dict__ else self.f64)

    @cached
    def entries(self) -> tuple[tuple[np.ndarray, ...], list[Scalar | int]]:
        """(np.nonzero of the entries, their values in that order): ints where an exact array is integer,
        else Fractions (floats where inexact), read from the RatArray without the dense Fractions."""
        nz = self.nonzero
        if "data" in self.__dict__:
            return nz, self.data[nz].tolist()
        r = self.rat
        vals = r.num[nz].tolist()
        vals = vals if r.den == 1 else [Fraction(v, r.den) for v in vals]
        if self.floats is not None:
            f = self.f64[nz]
            for k in np.flatnonzero(self.floats[nz]).tolist():
                vals[k] = float(f[k])
        return nz, vals

    @cached
    def sparse_rows(self) -> list[list[tuple[int, Scalar]]]:
        """Per row of a matrix: its nonzero (column, entry) pairs, in column order (readers that walk rows
        visit the nonzeros only, not every zero of a wide, mostly-zero row)."""
        out: list[list[tuple[int, Scalar]]] = [[] for _ in range(self.shape[0])]
        (rows, cols), vals = self.entries
        for i, j, v in zip(rows.tolist(), cols.tolist(), vals, strict=True):
            out[i].append((j, v))
        return out

    @cached
    def is_zero(self) -> bool:
        if "data" not in self.__dict__:
            return not self.rat.num.any()
        return all(v == 0 for v in self.data.reshape(-1))

    @cached
    def is_identity(self) -> bool:
        r = self.shape
        return len(r) == 2 and r[0] == r[1] and self.exact and self == Coeffs.eye(r[0])

    @cached
    def abs64(self) -> np.ndarray:
        """|entries| as float64 (the error analysis reads them many times)."""
        out = np.abs(self.f64)
        out.flags.writeable = False
        return out

    @cached
    def finite(self) -> bool:
        """Every entry is a finite float64 (|entry| < 1.8e308): what any float model or interpreter needs.
        Exact values over int64 numerators always are (|entry| < 2^62); only Python-int ones need a look."""
        if "data" in self.__dict__ and "rat" not in self.__dict__:
            return bool(np.isfinite(self.f64).all())
        r = self.rat
        return r.num.dtype == np.int64 or math.isfinite(float_of(r.max_num, r.den))

    def max_abs(self) -> float:
        return float(self.abs64.max()) if self.abs64.size else 0.0

    # algebra (exact where both sides are exact)
    def __matmul__(self, other: Coeffs) -> Coeffs:
        sa, sb = self.shape, other.shape  # (not .data: an exact operand would build its Fractions)
        m, k, n = (sa[0] if len(sa) == 2 else 1), sa[-1], (sb[1] if len(sb) == 2 else 1)
        if len(sa) == 2 and m == k and self.is_identity:  # common in rewrites (x = I @ y): nothing to multiply
            return other
        if len(sb) == 2 and k == n and other.is_identity:
            return self
        if m * k * n <= 8:  # a few scalar products: plain Python beats numpy's object matmul and conversions
            return Coeffs(obj_array(_small_matmul(self.data, other.data)))
        # one integer matmul instead of m*k*n Python-level Fraction products (microseconds each)
        exact = self.rat @ other.rat
        if self.exact and other.exact:
            return Coeffs.from_rat(exact)
        # an entry is a float (inexact) when a float takes part in its sum: its exact sum, rounded once
        rows, cols = self.float_mask.reshape(m, k).any(axis=1), other.float_mask.reshape(k, n).any(axis=0)
        floats = (rows[:, None] | cols[None, :]) & bool(k)  # (an empty sum stays an exact 0)
        return Coeffs.rounded(exact, floats.reshape(exact.shape))

    @cached
    def rat(self) -> RatArray:
        """Every entry's exact value (integer numerators over one denominator), for fast algebra."""
        return RatArray.of(self.data)

    @property
    def is_integer(self) -> bool:
        """Every entry is an exact integer."""
        return self.exact and self.rat.den == 1

    def __add__(self, other: Coeffs) -> Coeffs:
        if self.shape == other.shape:  # most sums in fusion and lowering add a zero bias: no Fraction additions
            if other.is_zero:
                return self
            if self.is_zero:
                return other
            exact = self.rat + other.rat  # integer numerators: no Fraction additions
            if self.exact and other.exact:
                return Coeffs.from_rat(exact)
            return Coeffs.rounded(exact, self.float_mask | other.float_mask)
        return Coeffs(obj_array(self.data + other.data))  # (numpy broadcasting: a few scalar sums)

    def __neg__(self) -> Coeffs:
        if "data" in self.__dict__ and "rat" not in self.__dict__:
            return Coeffs(-self.data)
        return Coeffs.from_rat(-self.rat, self.floats)

    @property
    def T(self) -> Coeffs:  # noqa: N802 - conventional name
        if "data" in self.__dict__ and "rat" not in self.__dict__:
            return Coeffs(self.data.T)
        return Coeffs.from_rat(self.rat.T, None if self.floats is None else self.floats.T)

    # identity by value
    def __eq__(self, other) -> bool:
        return isinstance(other, Coeffs) and self._key == other._key

    def __hash__(self) -> int:
        return self._hash

    @cached
    def _hash(self) -> int:  # hash-consing hashes the same coefficients many times; tuples do not cache theirs
        return hash(self._key)

    def to_text(self) -> str:
        if self.data.ndim == 1:
            return "[" + ", ".join(format_scalar(v) for v in self.data) + "]"
        return "[" + ", ".join("[" + ", ".join(format_scalar(v) for v in row) + "]" for row in self.data) + "]"

    def __repr__(self) -> str:
        return f"Coeffs({self.to_text()})"
