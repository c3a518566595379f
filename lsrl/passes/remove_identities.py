"""Removal of identities: the identity Linear, the full in-order Slice and the one-operand Concat."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.passes import Pass
from lsrl.passes.rewrite import Result, Rewriter, Rule, rewrite


def identity_linear(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.Linear) and len(args) == 1 and op.mats[0].is_identity and op.bias.is_zero:
        return args[0]
    return None


def full_slice(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.Slice) and op.indices == tuple(range(rw.dim(args[0]))):
        return args[0]
    return None


def single_concat(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if isinstance(op, ir.Concat) and len(args) == 1:
        return args[0]
    return None


RULES = [Rule(f.__name__, f, on) for f, on in ((identity_linear, ir.Linear), (full_slice, ir.Slice),
                                              (single_concat, ir.Concat))]

PASS = Pass("remove_identities", lambda g: rewrite(g, RULES),
            "replace identity Linears, full in-order Slices and one-operand Concats by their operand")
