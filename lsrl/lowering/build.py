"""Rules that turn scheduled values into stage matrices: state rows, ReLU units, gate rows, pass-throughs."""

from __future__ import annotations

import numpy as np

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.lowering.forms import Form
from lsrl.lowering.schedule import GATE, MLP, STATE, Schedule
from lsrl.lowering.stack import GateStage, Layout, MLPStage, Readout, StateStage


def _zeros(*shape: int) -> np.ndarray:
    # Python int zeros (exact, like the Fractions written over them) keep the many untouched entries cheap
    # to skip later: bool(0) is native, Fraction.__bool__ is not
    return np.zeros(shape, dtype=object)


def _put_form(mat: np.ndarray, bias: np.ndarray, rows: slice, form: Form, src: Layout) -> None:
    """Write a linear form over the values in `src` into rows of (mat, bias)."""
    for dep, c in form.terms:
        seg = src.find(dep)
        for i, j in zip(*np.nonzero(c.data), strict=True):  # sparse: Fraction additions cost microseconds
            mat[rows.start + i, seg.start + j] += c.data[i, j]
    bias[rows] += form.bias.data


def _pass_through(mat: np.ndarray, rows: slice, node: int, src: Layout) -> None:
    seg = src.find(node)
    for i in range(seg.dim):
        mat[rows.start + i, seg.start + i] += 1


def _rows(seg) -> slice:
    return slice(seg.start, seg.start + seg.dim)


def state_stage(g: ir.Graph, fs: dict[int, Form], sched: Schedule, pos: int) -> StateStage:
    src, out = sched.layouts[sched.reads(pos)], sched.layouts[pos]
    w, v = out.width, src.width
    A, B, bias, init = _zeros(w, w), _zeros(w, v), _zeros(w), _zeros(w)
    for seg in out.segments:
        r, node = _rows(seg), g[seg.node]
        if sched.avail[seg.node] != pos:  # rule: carry a live value through (A = 0)
            _pass_through(B, r, seg.node, src)
            continue
        op = node.op  # rule: a LinState's own rows
        A[r, r] = op.A.data
        init[r] = op.init.data
        bias[r] += op.bias.data
        if node.args:
            _put_form(B, bias, r, fs[node.args[0]].scaled(op.B), src)
    return StateStage(Coeffs(A), Coeffs(B), Coeffs(bias), Coeffs(init), out)


def mlp_stage(g: ir.Graph, fs: dict[int, Form], sched: Schedule, pos: int) -> MLPStage:
    src, out = sched.layouts[sched.reads(pos)], sched.layouts[pos]
    relus = [s for s in out.segments if sched.avail[s.node] == pos]
    hidden = sum(s.dim for s in relus)
    C, c, D = _zeros(out.width, src.width), _zeros(out.width), _zeros(out.width, hidden)
    E, e = _zeros(hidden, src.width), _zeros(hidden)
    h = 0
    for seg in out.segments:
        if sched.avail[seg.node] != pos:  # rule: carry a live value through
            _pass_through(C, _rows(seg), seg.node, src)
            continue
        units = slice(h, h + seg.dim)  # rule: one hidden ReLU unit per component
        _put_form(E, e, units, fs[g[seg.node].args[0]], src)
        D[_rows(seg), units] = np.eye(seg.dim, dtype=np.int64)
        h += seg.dim
    return MLPStage(Coeffs(C), Coeffs(c), Coeffs(D), Coeffs(E), Coeffs(e), out)


def gate_stage(g: ir.Graph, fs: dict[int, Form], sched: Schedule, pos: int) -> GateStage:
    src, out = sched.layouts[sched.reads(pos)], sched.layouts[pos]
    gates = [s for s in out.segments if sched.avail[s.node] == pos]
    k = sum(s.dim for s in gates)
    P, Q = _zeros(out.width, src.width), _zeros(out.width, k)
    U, u, V, v = _zeros(k, src.width), _zeros(k), _zeros(k, src.width), _zeros(k)
    j, owners = 0, []
    for seg in out.segments:
        if sched.avail[seg.node] != pos:
            _pass_through(P, _rows(seg), seg.node, src)
            continue
        rows = slice(j, j + seg.dim)  # rule: a Multi's operands become the two factor rows
        a, b = g[seg.node].args
        _put_form(U, u, rows, fs[a], src)
        _put_form(V, v, rows, fs[b], src)
        Q[_rows(seg), rows] = np.eye(seg.dim, dtype=np.int64)
        owners += [seg.node] * seg.dim
        j += seg.dim
    return GateStage(Coeffs(P), Coeffs(U), Coeffs(u), Coeffs(V), Coeffs(v), Coeffs(Q), out, tuple(owners))


def readout(form: Form, src: Layout) -> Readout:
    d = form.bias.shape[0]
    W, b = _zeros(d, src.width), _zeros(d)
    _put_form(W, b, slice(0, d), form, src)
    return Readout(Coeffs(W), Coeffs(b))


STAGE_RULES = {STATE: state_stage, MLP: mlp_stage, GATE: gate_stage}
