"""Folding of functions of a one-hot state: relu(W p + b) and (U p + u) * (V p + v) become linear in p.

Rule: when p is a basis vector at every step (lift_orbits.is_onehot_state), any function f of an affine map
of p alone is the linear map whose column j is f of that affine map at e_j: f(W p + b) = F p with
F[:, j] = f(W[:, j] + b). The columns are computed in exact rationals (float constants such as rounded
cosines are taken as the rationals they are), so a step relu(a + 1) - relu(a) of them folds to exactly 0
or 1. The folded value is a linear map of exact 0/1 units: exact in every dtype, with no ReLU to place.
"""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.passes import Pass
from lsrl.ir.rational import RatArray
from lsrl.passes import matrices as mx
from lsrl.passes.fuse_linear import affine_form
from lsrl.passes.lift_orbits import is_onehot_state
from lsrl.passes.rewrite import VIEWS, Result, Rewriter, Rule, rewrite


def _columns(rw: Rewriter, nid: int, p: int | None) -> tuple[int, RatArray] | None:
    """`nid` as an affine map of one one-hot state p (or a constant): (p, its value at each e_j as the
    columns of an exact matrix); None when it reads anything else. `p` pins the state (for products)."""
    atoms = _atoms(rw, nid)
    if len(atoms) > 1 or not all(is_onehot_state(rw.op(a)) and p in (None, a) for a in atoms):
        return None  # decided without the (costly) affine form: most ReLUs and products read other values
    form, bias = affine_form(rw, nid)
    if form:
        ((atom, m),) = form.items()
    elif p is None:
        return None  # a constant: fold_constants' business
    else:
        atom, m = p, mx.zeros(rw.dim(nid), rw.dim(p))
    b = bias.rat  # (exact values: a float constant, such as a rounded cosine, as the rational it is)
    return atom, m.rat + RatArray(b.num[:, None], b.den)


def _atoms(rw: Rewriter, nid: int) -> set[int]:
    """The non-view nodes `nid` is an affine map of: affine_form's keys, or more where a Slice picks zero rows."""
    op, args = rw.op(nid), rw.args(nid)
    if isinstance(op, ir.Linear):
        args = tuple(a for m, a in zip(op.mats, args, strict=True) if not m.is_zero)
    elif not isinstance(op, VIEWS):
        return {nid}
    return set().union(*(_atoms(rw, a) for a in args))


def relu_of_onehot(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    got = _columns(rw, args[0], None)
    if got is None:
        return None
    p, cols = got
    return ir.Linear((Coeffs.from_rat(cols.relu()),), mx.zeros(cols.shape[0])), (p,)


def product_of_onehot(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    atoms = _atoms(rw, args[0])
    if len(atoms) != 1 or not _atoms(rw, args[1]) <= atoms:  # checked first: u's columns cost O(dim p)
        return None
    u = _columns(rw, args[0], None)
    v = None if u is None else _columns(rw, args[1], u[0])
    if v is None:
        return None
    return ir.Linear((Coeffs.from_rat(u[1] * v[1]),), mx.zeros(u[1].shape[0])), (u[0],)


RULES = [Rule("relu_of_onehot", relu_of_onehot, ir.ReLU), Rule("product_of_onehot", product_of_onehot, ir.Multi)]

PASS = Pass("fold_onehot", lambda g: rewrite(g, RULES),
            "replace ReLUs and products of an affine map of a one-hot state by the linear map they equal")
