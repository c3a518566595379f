"""Builtin functions: compile-time helpers on constants and the few per-step primitives (relu, cat, sum)."""

from __future__ import annotations

import math
from collections.abc import Callable
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np

from lsrl.diagnostics import Span
from lsrl.frontend import ops
from lsrl.frontend.values import Builtin, Const, Step, Value, as_int
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs, obj_array
from lsrl.ir.rational import RatArray

if TYPE_CHECKING:
    from lsrl.frontend.elaborate import Elaborator

Impl = Callable[["Elaborator", list[Value], Span], Value]
BUILTINS: dict[str, tuple[int, int | None, Impl]] = {}  # name -> (min args, max args or None, impl)


def builtin(name: str, nmin: int, nmax: int | None = -1):
    def deco(fn: Impl) -> Impl:
        BUILTINS[name] = (nmin, nmin if nmax == -1 else nmax, fn)
        return fn
    return deco


def _const(ctx: Elaborator, v: Value, span: Span, fname: str) -> Const:
    if isinstance(v, Const):
        return v
    raise ctx.fail("E0216", f"`{fname}` needs a constant argument, got a {v.describe()}", span,
                   "compile-time helpers run before any token is read")


def _int(ctx: Elaborator, v: Value, span: Span, fname: str, minimum: int = 0) -> int:
    c = _const(ctx, v, span, fname)
    n = as_int(c.scalar()) if c.ndim == 0 else None
    if n is None or n < minimum:
        raise ctx.fail("E0217", f"`{fname}` needs an integer >= {minimum}", span)
    return n


def _snap(x: float) -> Fraction | float:
    """Results within 1e-12 of a multiple of 1/2 are exact (e.g. cos(pi/3) = 1/2, sin(pi) = 0)."""
    r = round(2 * x)
    return Fraction(r, 2) if abs(2 * x - r) < 1e-12 else x


def _unary_math(name: str, fn: Callable[[float], float]) -> None:
    def impl(ctx, args, span):
        c = _const(ctx, args[0], span, name)
        try:
            return Const(obj_array(np.vectorize(lambda v: _snap(fn(float(v))), otypes=[object])(c.arr)))
        except (ValueError, OverflowError):
            raise ctx.fail("E0218", f"`{name}` is undefined here (math domain error)", span) from None
    builtin(name, 1)(impl)


for _name, _fn in {"sin": math.sin, "cos": math.cos, "tan": math.tan, "exp": math.exp, "log": math.log,
                   "sqrt": math.sqrt}.items():
    _unary_math(_name, _fn)


@builtin("floor", 1)
def _floor(ctx, args, span):
    c = _const(ctx, args[0], span, "floor")
    return Const(obj_array(np.vectorize(lambda v: Fraction(math.floor(v)), otypes=[object])(c.arr)))


@builtin("ceil", 1)
def _ceil(ctx, args, span):
    c = _const(ctx, args[0], span, "ceil")
    return Const(obj_array(np.vectorize(lambda v: Fraction(math.ceil(v)), otypes=[object])(c.arr)))


@builtin("range", 1, 3)
def _range(ctx, args, span):
    ints = [_int(ctx, a, span, "range", minimum=-(10**9)) for a in args]
    r = range(*ints) if not (len(ints) == 3 and ints[2] == 0) else None
    if r is None:
        raise ctx.fail("E0217", "`range` step must not be zero", span)
    n = max(0, -(-(r.stop - r.start) // r.step))  # len(r), which overflows past a C ssize_t (range(10 ** 400))
    if n > 1_000_000:
        count = f"{n:,}" if n < 10**15 else f"over 10^{len(str(n)) - 1}"
        raise ctx.fail("E0219", f"range of {count} elements is too long", span)
    ctx.spend(len(r), span, "this range")
    return Const(obj_array(list(r)) if len(r) else np.empty((0,), dtype=object))


def _integers(arr: np.ndarray) -> Const:
    """A constant of small integers, each distinct value one shared Fraction (no per-entry conversion)."""
    return Const(RatArray(arr.astype(np.int64)).to_fractions())


@builtin("eye", 1, 2)
def _eye(ctx, args, span):
    n = _int(ctx, args[0], span, "eye", 1)
    k = _int(ctx, args[1], span, "eye", -n) if len(args) > 1 else 0
    if k > n:
        raise ctx.fail("E0217", f"`eye`'s diagonal offset must be between -{n} and {n}", span)
    ctx.spend(n * n, span, "this matrix")
    return _integers(np.eye(n, k=k, dtype=np.int64))


@builtin("zeros", 1, 2)
def _zeros(ctx, args, span):
    shape = [_int(ctx, a, span, "zeros", 1) for a in args]
    ctx.spend(math.prod(shape), span, "this array")
    return _integers(np.zeros(shape, dtype=np.int64))


@builtin("ones", 1, 2)
def _ones(ctx, args, span):
    shape = [_int(ctx, a, span, "ones", 1) for a in args]
    ctx.spend(math.prod(shape), span, "this array")
    return _integers(np.ones(shape, dtype=np.int64))


@builtin("diag", 1)
def _diag(ctx, args, span):
    c = _const(ctx, args[0], span, "diag")
    if c.ndim != 1:
        raise ctx.fail("E0216", "`diag` needs a constant vector", span)
    return Const(Coeffs.diag(c.arr).data.copy())


@builtin("onehot", 2)
def _onehot(ctx, args, span):
    i, n = _int(ctx, args[0], span, "onehot"), _int(ctx, args[1], span, "onehot", 1)
    if i >= n:
        raise ctx.fail("E0213", f"onehot index {i} is out of range for length {n}", span)
    ctx.spend(n, span, "this vector")
    return Const(obj_array([int(k == i) for k in range(n)]))


@builtin("transpose", 1)
def _transpose(ctx, args, span):
    c = _const(ctx, args[0], span, "transpose")
    if c.ndim != 2:
        raise ctx.fail("E0216", "`transpose` needs a constant matrix", span)
    return Const(obj_array(c.arr.T))


@builtin("matpow", 2)
def _matpow(ctx, args, span):
    m, k = _const(ctx, args[0], span, "matpow"), _int(ctx, args[1], span, "matpow")
    if m.ndim != 2 or m.arr.shape[0] != m.arr.shape[1]:
        raise ctx.fail("E0216", "`matpow` needs a square constant matrix", span)
    n = m.arr.shape[0]

    def product(a, b):  # each product is n^2 new entries, and its entries may double in size
        ctx.spend(n * n, span, "this matrix power")
        out = obj_array(a @ b)
        if ops.const_bits(out) > ops.MAX_CONST_BITS:
            raise ctx.fail("E0226", f"`matpow` would make constants of more than {ops.MAX_CONST_BITS:,} bits", span,
                           "compile-time constants are exact rationals: keep them small")
        return out

    out, base = obj_array(np.eye(n, dtype=np.int64)), m.arr
    while k:  # by squaring: log2(k) products, not k
        if k & 1:
            out = product(out, base)
        k >>= 1
        if k:
            base = product(base, base)
    return Const(out)


@builtin("len", 1)
def _len(ctx, args, span):
    v = ops.data_of(ctx, args[0], span, "the argument of len")
    if isinstance(v, Step):
        return Const.of(v.dim)
    if v.ndim == 0:
        raise ctx.fail("E0216", "a scalar has no length", span)
    return Const.of(v.arr.shape[0])


@builtin("relu", 1)
def _relu(ctx, args, span):
    return ops.relu(ctx, args[0], span)


@builtin("cat", 1, None)
def _cat(ctx, args, span):
    return ops.concat(ctx, args, span)


@builtin("sum", 1)
def _sum(ctx, args, span):
    v = ops.data_of(ctx, args[0], span, "the argument of sum")
    if isinstance(v, Const):
        return Const(obj_array(sum(v.arr.reshape(-1).tolist(), Fraction(0))))
    return ops.linear(ctx, [(Coeffs.ones(1, v.dim), v)], Coeffs.zeros(1), span)


@builtin("repeat", 2)
def _repeat(ctx, args, span):
    n = _int(ctx, args[1], span, "repeat", 1)
    ctx.spend(n, span, "this repeat")
    v = ops.data_of(ctx, args[0], span, "the argument of repeat")
    if isinstance(v, Const):
        if v.ndim != 0:
            raise ctx.fail("E0216", "`repeat` repeats a scalar", span)
        return Const(obj_array([v.scalar()] * n))
    if v.dim != 1:
        raise ctx.fail("E0204", f"`repeat` repeats a dim-1 value, got dim {v.dim}", span)
    return ops.broadcast_step(ctx, v, n, span)


@builtin("const", 1)
def _const_step(ctx, args, span):
    """Force a constant to be a per-step value (a Linear with only a bias)."""
    v = ops.data_of(ctx, args[0], span, "the argument of const")
    return ops.materialize(ctx, v, span)


@builtin("gate", 2)
def _gate(ctx, args, span):
    """The Multi primitive spelled out: elementwise product of two per-step values."""
    a = ops.materialize(ctx, ops.data_of(ctx, args[0], span, "a gate operand"), span)
    b = ops.materialize(ctx, ops.data_of(ctx, args[1], span, "a gate operand"), span)
    a, b = ops._match_steps(ctx, a, b, span, "*")
    return ctx.node(ir.Multi(), [a.node, b.node], span)


def builtin_values() -> dict[str, Value]:
    """Names bound in the outermost scope: builtins and the constant `pi`."""
    out: dict[str, Value] = {name: Builtin(name, impl) for name, (_, _, impl) in BUILTINS.items()}
    out["pi"] = Const(obj_array(math.pi))
    return out
