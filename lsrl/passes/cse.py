"""Common-subexpression elimination by hash-consing: equal op over equal operands is one node."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.passes import Pass
from lsrl.passes.rewrite import Result, Rewriter, Rule, rewrite


def sort_multi_operands(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """u*v = v*u exactly (floats too), so order the operands to let both spellings share a node."""
    if isinstance(op, ir.Multi) and args[0] > args[1]:
        return op, (args[1], args[0])
    return None


RULES = [Rule("sort_multi_operands", sort_multi_operands, ir.Multi)]

# Operands are rewritten before their users, so one bottom-up sweep finds every shared subexpression;
# a LinState is a deterministic function of its operand's history, so equal ones are equal values too.
PASS = Pass("cse", lambda g: rewrite(g, RULES, share=True),
            "hash-cons nodes: an equal op over equal operands (states included) becomes one node")
