"""Fusion of affine chains: Linear/Slice/Concat operands become matrix columns of Linear and state readers."""

# Rule for Linear of Linear: always substitute. It never adds a node (the reader keeps its place, only its
# terms change) and the inner Linear dies once its last Linear reader absorbs it. Matrices in the IR may
# grow (a narrow Linear read by many), but the lowering writes every value as a linear form over
# materialised nodes anyway (lsrl/lowering/forms.py), so the emitted weights do not change, and the IR
# becomes canonical (every Linear reads only Input/ReLU/Multi/LinState nodes, terms sorted by operand),
# which lets CSE find equal affine expressions. A state absorbs a view feeding it into B and bias; when
# that view spans several atoms they are read through a new Concat, so only if the view has no other use.

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.passes import Pass
from lsrl.passes import matrices as mx
from lsrl.passes.rewrite import VIEWS, Result, Rewriter, Rule, linear, rewrite, terms

Affine = tuple[dict[int, Coeffs], Coeffs]  # {atom id: matrix}, bias: a value as an affine map of atoms


def affine_form(rw: Rewriter, nid: int) -> Affine:
    """`nid` as sum_m M_m @ atom_m + bias over the non-view nodes (atoms) it is an affine map of."""
    op, args, d = rw.op(nid), rw.args(nid), rw.dim(nid)
    acc: dict[int, Coeffs] = {}
    if isinstance(op, ir.Linear):
        bias = op.bias
        for m, a in terms(op, args):
            form, b = affine_form(rw, a)
            bias = mx.add(bias, mx.matmul(m, b))
            for atom, c in form.items():
                _accumulate(acc, atom, mx.matmul(m, c))
    elif isinstance(op, ir.Slice):
        form, b = affine_form(rw, args[0])
        acc, bias = {k: mx.rows(c, op.indices) for k, c in form.items()}, mx.rows(b, op.indices)
    elif isinstance(op, ir.Concat):
        bias, off = mx.zeros(d), 0
        for a in args:
            form, b = affine_form(rw, a)
            bias = mx.add(bias, mx.pad_rows(b, off, d))
            for atom, c in form.items():
                _accumulate(acc, atom, mx.pad_rows(c, off, d))
            off += rw.dim(a)
    else:
        return {nid: Coeffs.eye(d)}, mx.zeros(d)
    return {k: acc[k] for k in sorted(acc) if not acc[k].is_zero}, bias


def _accumulate(acc: dict[int, Coeffs], key: int, m: Coeffs) -> None:
    acc[key] = mx.add(acc[key], m) if key in acc else m


# ---------------------------------------------------------------- Linear readers


def _expand(rw: Rewriter, m: Coeffs, a: int) -> tuple[list[tuple[Coeffs, int]], Coeffs | None]:
    """The term m @ a with the view `a` opened up one level: new terms and a bias contribution."""
    op, args = rw.op(a), rw.args(a)
    if isinstance(op, ir.Linear):
        return [(mx.matmul(m, mi), ai) for mi, ai in terms(op, args)], mx.matmul(m, op.bias)
    if isinstance(op, ir.Slice):
        return [(mx.columns(m, op.indices, rw.dim(args[0])), args[0])], None
    parts = mx.split_columns(m, [rw.dim(p) for p in args])  # Concat: one column block per part
    return list(zip(parts, args, strict=True)), None


def _substitute(kind: type[ir.Op]):
    def apply(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
        if not isinstance(op, ir.Linear) or not any(isinstance(rw.op(a), kind) for a in args):
            return None
        out, bias = [], op.bias
        for m, a in terms(op, args):
            if not isinstance(rw.op(a), kind):
                out.append((m, a))
                continue
            new, b = _expand(rw, m, a)
            out += new
            bias = bias if b is None else mx.add(bias, b)
        return linear(out, bias)
    return apply


def canonical_terms(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """Sum the terms of a repeated operand, drop zero ones and order terms by operand (for CSE)."""
    if not isinstance(op, ir.Linear):
        return None
    if all(x < y for x, y in zip(args, args[1:], strict=False)) and not any(m.is_zero for m in op.mats):
        return None
    acc: dict[int, Coeffs] = {}
    for m, a in terms(op, args):
        _accumulate(acc, a, m)
    return linear([(acc[a], a) for a in sorted(acc) if not acc[a].is_zero], op.bias)


# ---------------------------------------------------------------- Slice and Concat


def slice_of_slice(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    inner = rw.op(args[0]) if isinstance(op, ir.Slice) else None
    if isinstance(inner, ir.Slice):
        return ir.Slice(tuple(inner.indices[i] for i in op.indices)), rw.args(args[0])
    return None


def slice_of_concat(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """A Slice inside one part of a Concat reads that part directly."""
    if not isinstance(op, ir.Slice) or not isinstance(rw.op(args[0]), ir.Concat):
        return None
    where, off = [], 0
    for k, p in enumerate(rw.args(args[0])):
        where += [(k, off)] * rw.dim(p)
        off += rw.dim(p)
    parts = {where[i] for i in op.indices}
    if len(parts) != 1:
        return None
    ((k, base),) = parts
    return ir.Slice(tuple(i - base for i in op.indices)), (rw.args(args[0])[k],)


def slice_of_linear(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """Only the selected rows of a Linear read by nothing else."""
    inner = rw.op(args[0]) if isinstance(op, ir.Slice) else None
    if not isinstance(inner, ir.Linear) or not rw.single_use(args[0]):
        return None
    ts = [(mx.rows(m, op.indices), a) for m, a in terms(inner, rw.args(args[0]))]
    return linear(ts, mx.rows(inner.bias, op.indices))


def concat_flatten(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    if not isinstance(op, ir.Concat) or not any(isinstance(rw.op(a), ir.Concat) for a in args):
        return None
    flat = [p for a in args for p in (rw.args(a) if isinstance(rw.op(a), ir.Concat) else (a,))]
    return ir.Concat(), tuple(flat)


def concat_of_slices(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
    """Slices of one value laid side by side are one Slice."""
    if not isinstance(op, ir.Concat) or not all(isinstance(rw.op(a), ir.Slice) for a in args):
        return None
    if len({rw.args(a) for a in args}) != 1:
        return None
    return ir.Slice(tuple(i for a in args for i in rw.op(a).indices)), rw.args(args[0])


# ---------------------------------------------------------------- LinState readers


def _into_state(kind: type[ir.Op]):
    """B @ (affine map of atoms) becomes B' over the atoms (a Concat of them when several).

    With several atoms a new Concat is needed, so that only happens when the state is the view's only
    user (the view dies, the node count does not grow) and the view is not already such a Concat (checked
    first: its atoms are its parts of nonzero dim, and nothing is gained without computing the form)."""

    def apply(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
        if not isinstance(op, ir.LinState) or not args or not isinstance(rw.op(args[0]), kind):
            return None
        if _concat_of_atoms(rw, args[0]) and sum(rw.dim(p) > 0 for p in rw.args(args[0])) > 1:
            return None
        form, b = affine_form(rw, args[0])
        atoms = list(form)
        bias = mx.add(op.bias, mx.matmul(op.B, b))
        if not atoms:
            return ir.LinState(op.A, None, bias, op.init), ()
        B = mx.hstack([mx.matmul(op.B, form[a]) for a in atoms], op.A.shape[0])
        if len(atoms) == 1:
            return ir.LinState(op.A, B, bias, op.init), (atoms[0],)
        if not rw.single_use(args[0]):
            return None
        return ir.LinState(op.A, B, bias, op.init), (rw.add(ir.Concat(), atoms),)

    return apply


def _concat_of_atoms(rw: Rewriter, nid: int) -> bool:
    parts = rw.args(nid)
    return (isinstance(rw.op(nid), ir.Concat) and len(set(parts)) == len(parts)
            and not any(isinstance(rw.op(p), VIEWS) for p in parts))


RULES = [
    Rule("linear_of_linear", _substitute(ir.Linear), ir.Linear),
    Rule("slice_into_linear", _substitute(ir.Slice), ir.Linear),
    Rule("concat_into_linear", _substitute(ir.Concat), ir.Linear),
    Rule("canonical_terms", canonical_terms, ir.Linear),
    Rule("slice_of_slice", slice_of_slice, ir.Slice),
    Rule("slice_of_concat", slice_of_concat, ir.Slice),
    Rule("slice_of_linear", slice_of_linear, ir.Slice),
    Rule("concat_flatten", concat_flatten, ir.Concat),
    Rule("concat_of_slices", concat_of_slices, ir.Concat),
    Rule("linear_into_state", _into_state(ir.Linear), ir.LinState),
    Rule("slice_into_state", _into_state(ir.Slice), ir.LinState),
    Rule("concat_into_state", _into_state(ir.Concat), ir.LinState),
]

PASS = Pass("fuse_linear", lambda g: rewrite(g, RULES),
            "compose Linear chains and fold Slice/Concat/Linear operands into Linear matrices and state B")
