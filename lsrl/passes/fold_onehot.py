"""Folding of functions of a one-hot state: relu(W p + b) and (U p + u) * (V p + v) become linear in p.

Rule: when p is a basis vector at every step (lift_orbits.is_onehot_state), any function f of an affine map
of p alone is the linear map whose column j is f of that affine map at e_j: f(W p + b) = F p with
F[:, j] = f(W[:, j] + b). The columns are computed in exact rationals (float constants such as rounded
cosines are taken as the rationals they are), so a step relu(a + 1) - relu(a) of them folds to exactly 0
or 1. The folded value is a linear map of exact 0/1 units: exact in every dtype, with no ReLU to place.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np

from lsrl.ir import graph as ir
from lsrl.ir.passes import Pass
from lsrl.passes import matrices as mx
from lsrl.passes.fuse_linear import affine_form
from lsrl.passes.lift_orbits import is_onehot_state
from lsrl.passes.rewrite import Result, Rewriter, Rule, rewrite


def _columns(rw: Rewriter, nid: int, p: int | None) -> tuple[int, np.ndarray] | None:
    """`nid` as an affine map of one one-hot state p (or a constant): (p, its value at each e_j as the
    columns of an exact matrix); None when it reads anything else. `p` pins the state (for products)."""
    form, bias = affine_form(rw, nid)
    if len(form) > 1:
        return None
    if form:
        ((atom, m),) = form.items()
        if not is_onehot_state(rw.op(atom)) or (p is not None and atom != p):
            return None
    elif p is None:
        return None  # a constant: fold_constants' business
    else:
        atom, m = p, mx.zeros(rw.dim(nid), rw.dim(p))
    exact = np.vectorize(Fraction, otypes=[object])
    return atom, exact(m.data) + exact(bias.data)[:, None]


def relu_of_onehot(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    got = _columns(rw, args[0], None)
    if got is None:
        return None
    p, cols = got
    return ir.Linear((mx.coeffs(np.maximum(cols, Fraction(0))),), mx.zeros(cols.shape[0])), (p,)


def product_of_onehot(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    u = _columns(rw, args[0], None)
    if u is None:
        return None
    v = _columns(rw, args[1], u[0])
    if v is None:
        return None
    return ir.Linear((mx.coeffs(u[1] * v[1]),), mx.zeros(u[1].shape[0])), (u[0],)


RULES = [Rule("relu_of_onehot", relu_of_onehot, ir.ReLU), Rule("product_of_onehot", product_of_onehot, ir.Multi)]

PASS = Pass("fold_onehot", lambda g: rewrite(g, RULES),
            "replace ReLUs and products of an affine map of a one-hot state by the linear map they equal")
