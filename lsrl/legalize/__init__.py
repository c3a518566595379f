"""Legalisation: target-driven IR -> IR rewrites between the optimiser and lowering.

A target that realises only real diagonal transitions in [0, 1] (Mamba, Hawk: `Target.transitions ==
"diagonal01"`) gets every other LinState rewritten into ones it realises (lsrl/legalize/spectrum.py says
which). One rule, `legalize_state`, splits such a state into its coupled blocks (a merged state holds
several) and rewrites each block it cannot realise:

- periodic.py: an input-free block with a periodic orbit (rotations, cyclic permutations, sign flips) -> a
  step counter and an exact ReLU decoder of t mod n, valid for t <= max_len;
- delays.py: a nilpotent block longer than the convolution -> chained 4-slot delay lines, exact at every
  step;
- diagonal.py: a block diagonalisable over the rationals with eigenvalues in [0, 1] -> a diagonal state
  read through its eigenvectors, s = P z, exact.

A block none of these realises is a located error (E0706) naming the state, raised before any rewrite.
The rewritten graph equals the input graph under the interpreter at every step up to max_len
(tests/test_legalize.py checks it, last step included), so range facts of the nodes it keeps carry over
(`legalize_mapped`, lsrl.guarantee.facts.CarriedFacts).
"""

from __future__ import annotations

from lsrl.diagnostics import error
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.passes import Pass, PassReport
from lsrl.legalize.delays import split_delay_line
from lsrl.legalize.diagonal import diagonalise, eigenbasis
from lsrl.legalize.periodic import Phases, decode_periodic, period
from lsrl.legalize.spectrum import block_kind, blocks, diagonal01, nilpotency, sub
from lsrl.passes import matrices as mx
from lsrl.passes.rewrite import Result, Rewriter, Rule


def legalize(graph: ir.Graph, transitions: str, max_len: int, target: str = "this target"
             ) -> tuple[ir.Graph, PassReport | None]:
    """`graph` rewritten for a target with the given `transitions` ("any": unchanged, no report)."""
    new, report, _ = legalize_mapped(graph, transitions, max_len, target)
    return new, report


def legalize_mapped(graph: ir.Graph, transitions: str, max_len: int, target: str = "this target"
                    ) -> tuple[ir.Graph, PassReport | None, dict[int, int]]:
    """`legalize`, plus the map new id -> old id of every node the rewrite kept (the same value at every step
    up to max_len), through which range facts of `graph` carry over."""
    if transitions == "any":
        return graph, None, {n.id: n.id for n in graph.nodes}
    if transitions != "diagonal01":
        raise ValueError(f"unknown transitions {transitions!r}")
    for n in graph.nodes:  # refuse first, naming the program's own state
        if isinstance(n.op, ir.LinState) and not diagonal01(n.op):
            for b in blocks(n.op.A):
                piece = _block(n.op, b)
                if block_kind(sub(n.op.A, b)) == "illegal" and nilpotency(piece.A, len(b)) is None and (
                        period(piece) is None) and eigenbasis(piece.A) is None:
                    raise _unrealisable(n, b, target)
    phases = Phases([p for n in graph.nodes if isinstance(n.op, ir.LinState) and not diagonal01(n.op)
                     for b in blocks(n.op.A) if (p := period(_block(n.op, b))) is not None], max_len)

    def legalize_state(rw: Rewriter, op: ir.Op, args: tuple[int, ...]) -> Result:
        if diagonal01(op):
            return None
        n, parts, places = op.A.shape[0], [], []
        for b in blocks(op.A):
            piece = _block(op, b)
            x = args if piece.B is not None else ()
            node = None
            if not diagonal01(piece):
                node = (decode_periodic(rw, piece, phases) or split_delay_line(rw, piece, x)
                        or diagonalise(rw, piece, x))
            parts.append(node if node is not None else rw.add(piece, x))
            places.append(Coeffs.ones_at((n, len(b)), b, range(len(b))))
        return ir.Linear(tuple(places), mx.zeros(n)), tuple(parts)

    rules = [Rule("legalize_state", legalize_state, ir.LinState)]

    kept: dict[int, int] = {}

    def run(g: ir.Graph) -> tuple[ir.Graph, dict[str, int]]:
        rw = Rewriter(g, rules, share=True)
        new, counts = rw.run(prune=False)  # ids stay the builder's, which rw.remap gives
        for old, nid in rw.remap.items():
            kept.setdefault(nid, old)
        for d in phases.decoders:  # which decoder each periodic state got, and its size (for the compile report)
            for key, v in ((f"decoder.{d.kind}", 1), ("decoder.units", d.units), ("decoder.layers", d.layers)):
                counts[key] = counts.get(key, 0) + v
        return new, counts

    new, report = Pass("legalize", run, "rewrite states a diagonal [0, 1] target cannot realise")(graph)
    return new, report, kept


def _block(op: ir.LinState, idx: list[int]) -> ir.LinState:
    """The state restricted to components `idx` (a coupled block: it reads no other component)."""
    B = None if op.B is None else mx.rows(op.B, idx)
    return ir.LinState(sub(op.A, idx), None if B is None or B.is_zero else B, _entries(op.bias, idx),
                       _entries(op.init, idx))


def _entries(v: Coeffs, idx: list[int]) -> Coeffs:
    return Coeffs(v.data[idx]) if v.exact else Coeffs(v.f64[idx])


def _unrealisable(n: ir.Node, bad: list[int], target: str):
    what = f"`{n.label}`" if n.label else f"%{n.id}"
    why = "it reads an input, so it is not periodic either" if n.op.B is not None and not mx.rows(
        n.op.B, bad).is_zero else "its orbit is not periodic either"
    return error(
        "E0706", f"{target} cannot realise the state {what}: its transition on components {bad} "
        f"({sub(n.op.A, bad).to_text()}) is neither a diagonal in [0, 1] nor a short shift register, nor "
        f"diagonalisable (over the rationals) with eigenvalues in [0, 1], and {why}", n.span,
        "this target's recurrences are real decays in [0, 1] (Mamba, Hawk); rewrite the state with such "
        "transitions, or compile to a backend with general transitions (lrnn, rnn, gru, lstm)")


__all__ = ["legalize", "legalize_mapped"]
