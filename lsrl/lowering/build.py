"""Rules that turn scheduled values into stage matrices: state rows, ReLU units, gate rows, pass-throughs."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.lowering.forms import Form
from lsrl.lowering.schedule import Schedule
from lsrl.lowering.stack import GateStage, Layout, MLPStage, Readout, StateStage


class _Matrix:
    """A stage matrix (or vector) under construction: its nonzero entries, summed per index. Stage matrices
    are mostly zeros (pass-throughs, a few forms), so only what is written is ever touched."""

    def __init__(self, *shape: int):
        self.shape, self.entries = shape, {}

    def add(self, index: tuple[int, ...], v) -> None:
        old = self.entries.get(index)
        self.entries[index] = v if old is None else old + v  # most entries are written once: no addition

    def add_block(self, row0: int, col0: int | None, block: Coeffs) -> None:
        """Add a block's nonzero entries with its corner at (row0, col0); a vector: col0 None."""
        nz, vals = block.entries
        idx = [(nz[0] + row0).tolist()] + ([] if col0 is None else [(nz[1] + col0).tolist()])
        for k, v in zip(zip(*idx, strict=True), vals, strict=True):
            self.add(k, v)

    def add_identity(self, row0: int, col0: int, n: int) -> None:
        for i in range(n):
            self.add((row0 + i, col0 + i), 1)

    def coeffs(self) -> Coeffs:
        return Coeffs.from_entries(self.shape, self.entries)


def _put_form(mat: _Matrix, bias: _Matrix, rows: slice, form: Form, src: Layout) -> None:
    """Write a linear form over the values in `src` into rows of (mat, bias)."""
    for dep, c in form.terms:
        mat.add_block(rows.start, src.find(dep).start, c)
    bias.add_block(rows.start, None, form.bias)


def _pass_through(mat: _Matrix, rows: slice, node: int, src: Layout) -> None:
    seg = src.find(node)
    mat.add_identity(rows.start, seg.start, seg.dim)


def _rows(seg) -> slice:
    return slice(seg.start, seg.start + seg.dim)


def state_stage(g: ir.Graph, fs: dict[int, Form], sched: Schedule, pos: int) -> StateStage:
    src, out = sched.layouts[sched.reads(pos)], sched.layouts[pos]
    w, v = out.width, src.width
    A, B, bias, init = _Matrix(w, w), _Matrix(w, v), _Matrix(w), _Matrix(w)
    for seg in out.segments:
        r, node = _rows(seg), g[seg.node]
        if sched.avail[seg.node] != pos:  # rule: carry a live value through (A = 0)
            _pass_through(B, r, seg.node, src)
            continue
        op = node.op  # rule: a LinState's own rows
        A.add_block(r.start, r.start, op.A)
        init.add_block(r.start, None, op.init)
        bias.add_block(r.start, None, op.bias)
        if node.args:
            _put_form(B, bias, r, fs[node.args[0]].scaled(op.B), src)
    return StateStage(A.coeffs(), B.coeffs(), bias.coeffs(), init.coeffs(), out)


def mlp_stage(g: ir.Graph, fs: dict[int, Form], sched: Schedule, pos: int) -> MLPStage:
    src, out = sched.layouts[sched.reads(pos)], sched.layouts[pos]
    relus = [s for s in out.segments if sched.avail[s.node] == pos]
    hidden = sum(s.dim for s in relus)
    C, c, D = _Matrix(out.width, src.width), _Matrix(out.width), _Matrix(out.width, hidden)
    E, e = _Matrix(hidden, src.width), _Matrix(hidden)
    h = 0
    for seg in out.segments:
        if sched.avail[seg.node] != pos:  # rule: carry a live value through
            _pass_through(C, _rows(seg), seg.node, src)
            continue
        units = slice(h, h + seg.dim)  # rule: one hidden ReLU unit per component
        _put_form(E, e, units, fs[g[seg.node].args[0]], src)
        D.add_identity(seg.start, units.start, seg.dim)
        h += seg.dim
    return MLPStage(C.coeffs(), c.coeffs(), D.coeffs(), E.coeffs(), e.coeffs(), out)


def gate_stage(g: ir.Graph, fs: dict[int, Form], sched: Schedule, pos: int) -> GateStage:
    src, out = sched.layouts[sched.reads(pos)], sched.layouts[pos]
    gates = [s for s in out.segments if sched.avail[s.node] == pos]
    k = sum(s.dim for s in gates)
    P, Q = _Matrix(out.width, src.width), _Matrix(out.width, k)
    U, u, V, v = _Matrix(k, src.width), _Matrix(k), _Matrix(k, src.width), _Matrix(k)
    j, owners = 0, []
    for seg in out.segments:
        if sched.avail[seg.node] != pos:
            _pass_through(P, _rows(seg), seg.node, src)
            continue
        rows = slice(j, j + seg.dim)  # rule: a Multi's operands become the two factor rows
        a, b = g[seg.node].args
        _put_form(U, u, rows, fs[a], src)
        _put_form(V, v, rows, fs[b], src)
        Q.add_identity(seg.start, rows.start, seg.dim)
        owners += [seg.node] * seg.dim
        j += seg.dim
    return GateStage(P.coeffs(), U.coeffs(), u.coeffs(), V.coeffs(), v.coeffs(), Q.coeffs(), out, tuple(owners))


def readout(form: Form, src: Layout) -> Readout:
    d = form.bias.shape[0]
    W, b = _Matrix(d, src.width), _Matrix(d)
    _put_form(W, b, slice(0, d), form, src)
    return Readout(W.coeffs(), b.coeffs())


STAGE_RULES = {"state": state_stage, "mlp": mlp_stage, "gate": gate_stage}  # by the template's kinds
