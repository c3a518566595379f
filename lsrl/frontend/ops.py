"""Operators on elaboration values: constants fold exactly, per-step values become IR nodes."""

from __future__ import annotations

import operator
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from lsrl.diagnostics import Span
from lsrl.frontend.values import Const, Step, Value, as_int
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs, obj_array

if TYPE_CHECKING:
    from lsrl.frontend.elaborate import Elaborator

_SYMBOL = {"+": "add", "-": "subtract", "*": "multiply", "/": "divide", "@": "matrix-multiply"}


def data_of(ctx: Elaborator, v: Value, span: Span, what: str) -> Const | Step:
    if isinstance(v, (Const, Step)):
        return v
    raise ctx.fail("E0201", f"{v.describe()} used as {what}", span, "call it with arguments, e.g. `f(x)`")


# ---------------------------------------------------------------- constants <-> nodes


def materialize(ctx: Elaborator, v: Const | Step, span: Span) -> Step:
    """A per-step node holding v (a constant becomes a Linear with no operands)."""
    if isinstance(v, Step):
        return v
    if v.ndim == 2:
        raise ctx.fail("E0202", f"a {v.describe()} cannot be a per-step value", span,
                       "per-step values are vectors; use `M @ x` to apply a matrix")
    vec = v.arr.reshape(-1)
    if vec.size == 0:
        raise ctx.fail("E0203", "empty vector used as a per-step value", span)
    return ctx.node(ir.Linear((), Coeffs(vec)), [], span)


def linear(ctx: Elaborator, terms: list[tuple[Coeffs, Step]], bias: Coeffs, span: Span) -> Step:
    return ctx.node(ir.Linear(tuple(m for m, _ in terms), bias), [s.node for _, s in terms], span)


def broadcast_step(ctx: Elaborator, s: Step, dim: int, span: Span) -> Step:
    """A dim-1 per-step value repeated to `dim` components."""
    if s.dim == dim:
        return s
    return linear(ctx, [(Coeffs.ones(dim, 1), s)], Coeffs.zeros(dim), span)


def _const_vector(ctx: Elaborator, c: Const, dim: int, span: Span, op: str) -> np.ndarray:
    """A constant operand of an elementwise op with a per-step value of dim `dim`, as a vector of the result's
    length: a scalar or a length-1 vector is repeated to `dim`; against a dim-1 per-step value any vector
    is kept as it is (the per-step value broadcasts to its length)."""
    if c.ndim == 0 or (c.ndim == 1 and c.arr.shape[0] == 1):
        return np.full(dim, c.arr.reshape(-1)[0], dtype=object)
    if c.ndim == 1 and (c.arr.shape[0] == dim or dim == 1):
        return c.arr
    raise ctx.fail("E0204", f"cannot {_SYMBOL.get(op, op)} a per-step value of dim {dim} and a {c.describe()}",
                   span, "elementwise operations need equal dims, a scalar, or dim 1 (which broadcasts)")


def _spread(ctx: Elaborator, step: Step, n: int, scale: np.ndarray, span: Span) -> Coeffs:
    """The matrix of `scale * step` (elementwise) with a result of length n: diagonal, or a column when a
    dim-1 step broadcasts to n > 1 components. A dense n x n diagonal counts n^2 elements of work."""
    if step.dim == 1 and n > 1:
        return Coeffs(scale.reshape(n, 1))
    ctx.spend(n * n, span, f"a {n} x {n} elementwise scaling")
    return Coeffs.diag(scale)


def _match_steps(ctx: Elaborator, a: Step, b: Step, span: Span, op: str) -> tuple[Step, Step]:
    if a.dim == b.dim:
        return a, b
    if a.dim == 1:
        return broadcast_step(ctx, a, b.dim, span), b
    if b.dim == 1:
        return a, broadcast_step(ctx, b, a.dim, span)
    raise ctx.fail("E0204", f"cannot {_SYMBOL[op]} per-step values of dims {a.dim} and {b.dim}", span,
                   "elementwise operations need equal dims (or dim 1, which broadcasts)")


def _fold(ctx: Elaborator, fn, a: Const, b: Const, span: Span, op: str) -> Const:
    if a.ndim == 0 and b.ndim == 0:
        return Const.number(fn(a.arr[()], b.arr[()]))
    try:
        with np.errstate(all="ignore"):  # (a float overflow is the caller's diagnostic, not a warning)
            return Const(obj_array(fn(a.arr, b.arr)))
    except ValueError:
        raise ctx.fail("E0204", f"cannot {_SYMBOL.get(op, op)} a {a.describe()} and a {b.describe()}",
                       span, "shapes must match or one side must be a scalar") from None


# ---------------------------------------------------------------- arithmetic


def add(ctx: Elaborator, a: Value, b: Value, span: Span, sign: int = 1) -> Value:
    op = "+" if sign > 0 else "-"
    a, b = data_of(ctx, a, span, "an operand"), data_of(ctx, b, span, "an operand")
    if isinstance(a, Const) and isinstance(b, Const):
        return _fold(ctx, operator.add if sign > 0 else operator.sub, a, b, span, op)
    s = Fraction(sign)
    if isinstance(a, Step) and isinstance(b, Step):
        a, b = _match_steps(ctx, a, b, span, op)
        ctx.spend(a.dim * a.dim + b.dim * b.dim, span, f"a sum of two {a.dim}-dim values")
        return linear(ctx, [(Coeffs.eye(a.dim), a), (Coeffs.diag(np.full(b.dim, s, dtype=object)), b)],
                      Coeffs.zeros(a.dim), span)
    if isinstance(a, Step):
        vec = _const_vector(ctx, b, a.dim, span, op)
        return linear(ctx, [(_spread(ctx, a, len(vec), np.full(len(vec), Fraction(1), dtype=object), span), a)],
                      Coeffs(s * vec), span)
    vec = _const_vector(ctx, a, b.dim, span, op)
    return linear(ctx, [(_spread(ctx, b, len(vec), np.full(len(vec), s, dtype=object), span), b)], Coeffs(vec), span)


def neg(ctx: Elaborator, a: Value, span: Span) -> Value:
    a = data_of(ctx, a, span, "an operand")
    if isinstance(a, Const):
        return Const(obj_array(-a.arr))
    ctx.spend(a.dim * a.dim, span, f"negating a {a.dim}-dim value")
    return linear(ctx, [(Coeffs.diag(np.full(a.dim, Fraction(-1), dtype=object)), a)], Coeffs.zeros(a.dim), span)


def mul(ctx: Elaborator, a: Value, b: Value, span: Span) -> Value:
    a, b = data_of(ctx, a, span, "an operand"), data_of(ctx, b, span, "an operand")
    if isinstance(a, Const) and isinstance(b, Const):
        return _fold(ctx, operator.mul, a, b, span, "*")
    if isinstance(a, Step) and isinstance(b, Step):
        a, b = _match_steps(ctx, a, b, span, "*")
        return ctx.node(ir.Multi(), [a.node, b.node], span)
    s, c = (a, b) if isinstance(a, Step) else (b, a)
    vec = _const_vector(ctx, c, s.dim, span, "*")
    return linear(ctx, [(_spread(ctx, s, len(vec), vec, span), s)], Coeffs.zeros(len(vec)), span)


def div(ctx: Elaborator, a: Value, b: Value, span: Span) -> Value:
    a, b = data_of(ctx, a, span, "an operand"), data_of(ctx, b, span, "an operand")
    if isinstance(b, Step):
        raise ctx.fail("E0205", "division by a per-step value is not an LSRL primitive", span,
                       "divide by constants only; a reciprocal needs an approximation you build yourself")
    if any(v == 0 for v in b.arr.reshape(-1)):
        raise ctx.fail("E0207", "division by zero", span)
    inv = Const(obj_array(np.vectorize(lambda v: 1 / v, otypes=[object])(b.arr)))
    return mul(ctx, a, inv, span)


def matmul(ctx: Elaborator, a: Value, b: Value, span: Span) -> Value:
    a, b = data_of(ctx, a, span, "an operand"), data_of(ctx, b, span, "an operand")
    if isinstance(a, Step):
        raise ctx.fail("E0208", "the left operand of `@` must be a constant matrix", span,
                       "write `M @ x` with the constant on the left")
    if a.ndim == 0:
        raise ctx.fail("E0208", "the left operand of `@` must be a matrix or vector, not a scalar", span,
                       "use `*` to scale")
    if isinstance(b, Const):
        if b.ndim == 0:
            raise ctx.fail("E0208", "the right operand of `@` must be a matrix or vector", span, "use `*`")
        if a.arr.shape[-1] != b.arr.shape[0]:
            raise ctx.fail("E0204", f"`@` of a {a.describe()} and a {b.describe()}: inner dims differ", span)
        return Const(obj_array(a.arr @ b.arr))
    m = a.arr if a.ndim == 2 else a.arr.reshape(1, -1)
    if m.shape[1] != b.dim:
        raise ctx.fail("E0204", f"`@` of a {a.describe()} and a per-step value of dim {b.dim}: "
                       f"the matrix has {m.shape[1]} columns", span)
    return linear(ctx, [(Coeffs(m), b)], Coeffs.zeros(m.shape[0]), span)


MAX_CONST_BITS = 1 << 16  # compile-time constants larger than this are refused (E0226)


def const_bits(arr: np.ndarray) -> int:
    """The largest size in bits (numerator and denominator) of an exact constant array's entries."""
    return max((abs(Fraction(v).numerator).bit_length() + Fraction(v).denominator.bit_length()
                for v in arr.reshape(-1) if not isinstance(v, float)), default=0)


def power(ctx: Elaborator, a: Value, b: Value, span: Span) -> Value:
    a, b = data_of(ctx, a, span, "an operand"), data_of(ctx, b, span, "an operand")
    if isinstance(a, Step) or isinstance(b, Step):
        raise ctx.fail("E0209", "`**` works on constants only", span, "use `x * x` for a per-step square")
    if b.ndim != 0:
        raise ctx.fail("E0204", "exponent must be a scalar", span)
    e = b.scalar()
    ie = as_int(e)
    if ie is not None:
        e = ie
        # an exact power's size is |e| times its base's: refuse what would not fit in memory or time
        bits = const_bits(a.arr)
        if bits * abs(ie) > MAX_CONST_BITS:
            raise ctx.fail("E0226", f"`**` would make a constant of about {bits * abs(ie):,} bits (the limit is "
                           f"{MAX_CONST_BITS:,})", span, "compile-time constants are exact rationals: keep them small")
    try:
        return Const(obj_array(np.vectorize(lambda v: v ** e, otypes=[object])(a.arr)))
    except ZeroDivisionError:
        raise ctx.fail("E0207", "division by zero in `**`", span) from None


def mod(ctx: Elaborator, a: Value, b: Value, span: Span) -> Value:
    a, b = data_of(ctx, a, span, "an operand"), data_of(ctx, b, span, "an operand")
    if isinstance(a, Step) or isinstance(b, Step):
        raise ctx.fail("E0209", "`%` works on constants only", span,
                       "for a per-step count modulo n use mod_counter(n)")
    if any(v == 0 for v in b.arr.reshape(-1)):
        raise ctx.fail("E0207", "modulo by zero", span)
    return _fold(ctx, operator.mod, a, b, span, "%")


_CMP = {"==": operator.eq, "!=": operator.ne, "<": operator.lt, "<=": operator.le, ">": operator.gt,
        ">=": operator.ge}


_TRUTH = {False: Const.number(Fraction(0)), True: Const.number(Fraction(1))}  # (never written to)


def compare(ctx: Elaborator, op: str, a: Value, b: Value, span: Span) -> Const:
    a, b = data_of(ctx, a, span, "an operand"), data_of(ctx, b, span, "an operand")
    if isinstance(a, Step) or isinstance(b, Step):
        raise ctx.fail("E0210", f"`{op}` compares constants only", span,
                       "for a per-step comparison use larger(x, y), smaller(x, y) or eq(x, y)")
    if a.ndim or b.ndim:
        raise ctx.fail("E0210", f"`{op}` compares scalars only", span)
    return _TRUTH[_CMP[op](a.arr[()], b.arr[()])]


# ---------------------------------------------------------------- structure


def index(ctx: Elaborator, target: Value, idx: Value, span: Span) -> Value:
    target = data_of(ctx, target, span, "an indexed value")
    n = target.dim if isinstance(target, Step) else (target.arr.shape[0] if target.ndim else 0)
    if isinstance(target, Const) and target.ndim == 0:
        raise ctx.fail("E0211", "a scalar cannot be indexed", span)
    positions = _index_positions(ctx, idx, n, span)
    if isinstance(target, Const):
        sel = target.arr[positions]
        return Const(obj_array(sel))
    return ctx.node(ir.Slice(tuple(positions) if isinstance(positions, list) else (positions,)),
                    [target.node], span)


def _index_positions(ctx: Elaborator, idx: Value, n: int, span: Span) -> int | list[int]:
    if not isinstance(idx, Const) or idx.ndim > 1:
        raise ctx.fail("E0212", "an index must be a constant integer or vector of integers", span)
    vals = [as_int(v) for v in idx.arr.reshape(-1)]
    if any(v is None for v in vals):
        raise ctx.fail("E0212", "an index must be an integer", span)
    for v in vals:
        if not -n <= v < n:
            raise ctx.fail("E0213", f"index {v} is out of range for length {n}", span,
                           f"valid indices are 0..{n - 1} (or -{n}..-1 from the end)" if n else None)
    vals = [v % n for v in vals]
    return vals[0] if idx.ndim == 0 else vals


def slice_(ctx: Elaborator, target: Value, start: Value | None, stop: Value | None, span: Span) -> Value:
    target = data_of(ctx, target, span, "a sliced value")
    if isinstance(target, Const) and target.ndim == 0:
        raise ctx.fail("E0211", "a scalar cannot be sliced", span)
    n = target.dim if isinstance(target, Step) else target.arr.shape[0]
    bounds = []
    for b in (start, stop):
        if b is None:
            bounds.append(None)
        elif isinstance(b, Const) and b.ndim == 0 and as_int(b.scalar()) is not None:
            bounds.append(as_int(b.scalar()))
        else:
            raise ctx.fail("E0212", "slice bounds must be constant integers", span)
    positions = list(range(n))[bounds[0]:bounds[1]]
    if not positions:
        raise ctx.fail("E0213", f"slice [{bounds[0]}:{bounds[1]}] of length {n} is empty", span)
    if isinstance(target, Const):
        return Const(obj_array(target.arr[positions]))
    return ctx.node(ir.Slice(tuple(positions)), [target.node], span)


def concat(ctx: Elaborator, items: list[Value], span: Span) -> Value:
    """Concatenate scalars and vectors; constant-only input stays a constant vector."""
    parts = [data_of(ctx, v, span, "a vector part") for v in items]
    for p in parts:
        if isinstance(p, Const) and p.ndim == 2:
            raise ctx.fail("E0214", f"cannot concatenate a {p.describe()}", span,
                           "concatenate scalars and vectors")
    if all(isinstance(p, Const) for p in parts):
        return Const(obj_array([v for p in parts for v in p.arr.reshape(-1)]))
    steps = [materialize(ctx, p, span) for p in parts if not (isinstance(p, Const) and p.arr.size == 0)]
    if len(steps) == 1:
        return steps[0]
    return ctx.node(ir.Concat(), [s.node for s in steps], span)


def make_list(ctx: Elaborator, items: list[Value], span: Span) -> Value:
    """`[a, b, ...]`: scalars give a vector, equal-length constant vectors a matrix, else concatenation."""
    parts = [data_of(ctx, v, span, "a list element") for v in items]
    if not parts:
        return Const(np.empty((0,), dtype=object))
    if all(isinstance(p, Const) for p in parts):
        ndims = {p.ndim for p in parts}
        if ndims == {1}:
            lengths = {p.arr.shape[0] for p in parts}
            if len(lengths) > 1:
                raise ctx.fail("E0215", f"rows of a matrix literal have different lengths {sorted(lengths)}", span,
                               "use cat(...) to concatenate vectors of different lengths")
            return Const(obj_array([list(p.arr) for p in parts]))
        if 2 in ndims:
            raise ctx.fail("E0214", "a list element is a matrix", span, "matrices nest at most two levels")
    return concat(ctx, parts, span)


def relu(ctx: Elaborator, v: Value, span: Span) -> Value:
    v = data_of(ctx, v, span, "the argument of relu")
    if isinstance(v, Const):
        return Const(obj_array(np.vectorize(lambda x: x if x > 0 else Fraction(0), otypes=[object])(v.arr)))
    return ctx.node(ir.ReLU(), [v.node], span)
