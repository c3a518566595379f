"""Values during elaboration: compile-time constants (exact arrays) and per-step values (graph nodes)."""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from lsrl.frontend import ast
from lsrl.ir.coeffs import Scalar, format_scalar, obj_array


@dataclass(frozen=True, eq=False)
class Const:
    """A compile-time scalar, vector or matrix; entries are Fraction (exact) or float."""

    arr: np.ndarray

    @staticmethod
    def of(data) -> Const:
        return Const(obj_array(data))

    @staticmethod
    def number(x: Scalar) -> Const:
        """A scalar that is already a Fraction or a float (what exact folding gives), without obj_array's
        normalising pass: comprehensions fold hundreds of thousands of these."""
        if type(x) not in (Fraction, float):
            return Const.of(x)
        arr = np.empty((), dtype=object)
        arr[()] = x
        return Const(arr)

    @property
    def ndim(self) -> int:
        return self.arr.ndim

    @property
    def finite(self) -> bool:
        """No float entry is inf or nan (exact entries are rationals, always finite)."""
        if self.arr.ndim == 0:
            x = self.arr[()]
            return type(x) is not float or math.isfinite(x)
        return all(math.isfinite(x) for x in self.arr.reshape(-1).tolist() if type(x) is float)

    def scalar(self) -> Scalar:
        return self.arr.reshape(()).item() if self.arr.ndim == 0 else self.arr.reshape(-1)[0]

    def describe(self) -> str:
        if self.ndim == 0:
            return f"constant {format_scalar(self.scalar())}"
        if self.ndim == 1:
            return f"constant vector of length {self.arr.shape[0]}"
        return f"constant {self.arr.shape[0]}x{self.arr.shape[1]} matrix"


@dataclass(frozen=True)
class Step:
    """A per-step vector value: node `node` of the graph being built."""

    node: int
    dim: int

    def describe(self) -> str:
        return f"per-step value of dim {self.dim}"


@dataclass(frozen=True, eq=False)
class Function:
    """A user or prelude function, closed over the scope it was defined in."""

    defn: ast.Def
    scope: object  # lsrl.frontend.scope.Scope
    prelude: bool

    def describe(self) -> str:
        return f"function `{self.defn.name}`"


@dataclass(frozen=True, eq=False)
class Builtin:
    name: str
    fn: object  # callable(elaborator, args, kwargs, span) -> Value

    def describe(self) -> str:
        return f"builtin `{self.name}`"


Value = Const | Step | Function | Builtin


def as_int(v: Scalar) -> int | None:
    """The integer a scalar holds exactly, or None."""
    if isinstance(v, Fraction) and v.denominator == 1:
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    return None
