"""Constant folding over exact rationals: constant ops evaluate, constant operands move into biases."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.passes import Pass
from lsrl.passes import matrices as mx
from lsrl.passes.rewrite import Result, Rewriter, Rule, linear, rewrite, terms


def _constant(value) -> tuple[ir.Op, tuple[int, ...]]:
    return ir.Linear((), mx.coeffs(value)), ()


def relu_of_constant(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.ReLU) and (c := rw.const(args[0])) is not None:
        return _constant([v if v > 0 else 0 for v in c.data])
    return None


def slice_of_constant(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.Slice) and (c := rw.const(args[0])) is not None:
        return _constant(c.data[list(op.indices)])
    return None


def concat_of_constants(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.Concat) and all(rw.const(a) is not None for a in args):
        return ir.Linear((), mx.concat([rw.const(a) for a in args])), ()
    return None


def multi_of_constants(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.Multi) and all(rw.const(a) is not None for a in args):
        return _constant(rw.const(args[0]).data * rw.const(args[1]).data)
    return None


def multi_by_constant(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """c * x is diag(c) @ x: a gate with a constant factor needs no gate."""
    if not isinstance(op, ir.Multi):
        return None
    for k in (0, 1):
        if (c := rw.const(args[k])) is not None:
            return linear([(mx.diag(c), args[1 - k])], mx.zeros(c.shape[0]))
    return None


def constant_terms_into_bias(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if not isinstance(op, ir.Linear) or all(rw.const(a) is None for a in args):
        return None
    bias, keep = op.bias, []
    for m, a in terms(op, args):
        if (c := rw.const(a)) is not None:
            bias = mx.add(bias, mx.matmul(m, c))
        else:
            keep.append((m, a))
    return linear(keep, bias)


def drop_zero_terms(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.Linear) and any(m.is_zero for m in op.mats):
        return linear([(m, a) for m, a in terms(op, args) if not m.is_zero], op.bias)
    return None


def constant_into_state(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """A constant drive B c is part of the state's bias."""
    if isinstance(op, ir.LinState) and args and (c := rw.const(args[0])) is not None:
        return ir.LinState(op.A, None, mx.add(op.bias, mx.matmul(op.B, c)), op.init), ()
    return None


def zero_input_state(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.LinState) and op.B is not None and op.B.is_zero:
        return ir.LinState(op.A, None, op.bias, op.init), ()
    return None


def memoryless_state(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """With A = 0 the state is s_t = B x_t + bias at every step it is read: a Linear."""
    if not isinstance(op, ir.LinState) or not op.A.is_zero:
        return None
    return linear([(op.B, args[0])] if args else [], op.bias)


def fixed_point_state(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """An input-free state started at a fixed point of s -> A s + bias never moves: a constant.

    Only for exact coefficients: with floats the interpreter's rounding could move it off the point."""
    if not isinstance(op, ir.LinState) or args or not all(c.exact for c in (op.A, op.bias, op.init)):
        return None
    # in exact integer arithmetic: each sweep asks again, and the operands' RatArrays are cached on them
    if (op.A.rat @ op.init.rat + op.bias.rat).equals(op.init.rat):
        return ir.Linear((), op.init), ()
    return None


RULES = [Rule(f.__name__, f, on) for f, on in (
    (relu_of_constant, ir.ReLU), (slice_of_constant, ir.Slice), (concat_of_constants, ir.Concat),
    (multi_of_constants, ir.Multi), (multi_by_constant, ir.Multi), (constant_terms_into_bias, ir.Linear),
    (drop_zero_terms, ir.Linear), (constant_into_state, ir.LinState), (zero_input_state, ir.LinState),
    (memoryless_state, ir.LinState), (fixed_point_state, ir.LinState),
)]

PASS = Pass("fold_constants", lambda g: rewrite(g, RULES),
            "evaluate constant ops exactly, make constant gates Linears, move constant terms into biases")
