"""The optimiser: semantics-preserving, exact IR passes and the pipeline that runs them."""

from __future__ import annotations

from collections.abc import Sequence

from lsrl.ir.graph import Graph
from lsrl.ir.passes import Pass, PassReport, run_passes
from lsrl.passes import cse, dce, fold_constants, fuse_linear, merge_states, remove_identities

MAX_ROUNDS = 10  # the cleanup loop settles in 2-3 rounds on real programs; this only bounds a bad rule


def fixpoint(name: str, passes: Sequence[Pass], doc: str) -> Pass:
    """A pass that repeats `passes` in turn until none changes the graph; counts are keyed `pass.rule`.

    Each pass is idempotent (one bottom-up sweep settles every node), so a pass needs to run again only
    after another one changed the graph: the loop stops as soon as every pass has seen the current graph,
    without a whole extra round to confirm it."""

    def run(graph: Graph) -> tuple[Graph, dict[str, int]]:
        counts: dict[str, int] = {"rounds": 0}
        seen = [False] * len(passes)  # has pass i run on the current graph?
        for _ in range(MAX_ROUNDS):
            counts["rounds"] += 1
            for i, p in enumerate(passes):
                if all(seen):
                    return graph, counts
                before = graph
                graph, report = p(graph)
                for rule, k in report.rewrites.items():
                    counts[f"{p.name}.{rule}"] = counts.get(f"{p.name}.{rule}", 0) + k
                if graph != before:
                    seen = [False] * len(passes)
                seen[i] = True
            if all(seen):
                break
        return graph, counts

    return Pass(name, run, doc)


CLEANUP = [fold_constants.PASS, remove_identities.PASS, fuse_linear.PASS, cse.PASS]

# One round of each cheap pass first, so that the ASAP positions merge_states groups by are those of a
# folded graph (zero terms and constant gates gone), then merge, then clean up to a fixed point: the
# Slices that merging introduces fuse into their Linear readers there.
PIPELINE: list[Pass] = [
    dce.PASS,
    fold_constants.PASS,
    remove_identities.PASS,
    cse.PASS,
    fuse_linear.PASS,
    merge_states.PASS,
    fixpoint("simplify", CLEANUP, "repeat fold_constants, remove_identities, fuse_linear, cse to a fixpoint"),
]

PASS_NAMES: list[str] = [p.name for p in PIPELINE]
PASSES: dict[str, Pass] = {p.name: p for p in (
    dce.PASS, fold_constants.PASS, remove_identities.PASS, cse.PASS, fuse_linear.PASS, merge_states.PASS)}


def optimize(graph: Graph, upto: str | None = None) -> tuple[Graph, list[PassReport]]:
    """Run PIPELINE, stopping after the pass named `upto` (all of it when None)."""
    if upto is not None and upto not in PASS_NAMES:
        raise ValueError(f"unknown pass {upto!r}; passes: {', '.join(PASS_NAMES)}")
    return run_passes(graph, PIPELINE, upto)


__all__ = ["PASSES", "PASS_NAMES", "PIPELINE", "Pass", "PassReport", "fixpoint", "optimize"]
