"""Wires: the scalar components the analysis tracks, and their kinds."""

from __future__ import annotations

from lsrl.analysis.ranges.arith import ZERO
from lsrl.analysis.ranges.values import Val

IN, LIN, RELU, MUL, STATE = "input", "linear", "relu", "multi", "state"
STATELESS = (LIN, RELU, MUL)


class _Wire:
    """One scalar component of a node (or of a state's drive B x + bias)."""

    __slots__ = ("kind", "args", "coefs", "bias", "pos", "node", "comp", "flt", "src", "val", "key", "aux")

    def __init__(self, kind, node, comp, pos, args=(), coefs=(), bias=ZERO, flt=False):
        self.kind, self.node, self.comp, self.pos = kind, node, comp, pos
        self.args, self.coefs, self.bias, self.flt = args, coefs, bias, flt
        self.src: frozenset = frozenset()
        self.val: Val | None = None
        self.key = None  # states: "time", ("orbit", node, block) or ("s", node, comp)
        self.aux = None  # time: (init, b), s = init + t b; orbit: index in the block
