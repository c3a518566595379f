"""The optimiser: semantics-preserving, exact IR passes and the pipeline that runs them."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from types import ModuleType

from lsrl.ir.graph import Graph, LinState
from lsrl.ir.passes import Pass, PassReport, run_passes
from lsrl.passes import cse, dce, fold_constants, fold_onehot, fuse_linear, lift_orbits, merge_states, remove_identities
from lsrl.passes.rewrite import rewrite

MAX_ROUNDS = 10  # the cleanup loop settles in 2-3 rounds on real programs; this only bounds a bad rule


def fixpoint(name: str, modules: Sequence[ModuleType], doc: str) -> Pass:
    """A pass that sweeps the rules of every rule-based pass module in `modules` together, hash-consing as
    CSE does, until a sweep changes nothing; counts are keyed `pass.rule`.

    One sweep applies every rule to each node (operands first), so a rule sees what the others made of
    the operands; repeating matters only where a rule's condition depends on the whole graph (use counts)
    or a node died. A sweep that changes nothing would change nothing in any one of the passes either, so
    the result is a fixed point of each, reached in about a third of the sweeps of running them in turn."""
    rules = [replace(r, name=f"{m.PASS.name}.{r.name}") for m in modules for r in m.RULES]

    def run(graph: Graph) -> tuple[Graph, dict[str, int]]:
        counts: dict[str, int] = {"rounds": 0}
        for _ in range(MAX_ROUNDS):
            counts["rounds"] += 1
            new, c = rewrite(graph, rules, share=True)
            for rule, k in c.items():
                key = "cse.shared" if rule == "shared" else rule
                counts[key] = counts.get(key, 0) + k
            if new == graph:
                break
            graph = new
        return graph, counts

    return Pass(name, run, doc)


CLEANUP = [fold_constants, remove_identities, fuse_linear, cse]

# One round of each cheap pass first, so that the ASAP positions merge_states groups by are those of a
# folded graph (zero terms and constant gates gone), then merge, then clean up to a fixed point: the
# Slices that merging introduces fuse into their Linear readers there.
PIPELINE: list[Pass] = [
    dce.PASS,
    fold_constants.PASS,
    remove_identities.PASS,
    cse.PASS,
    lift_orbits.PASS,
    fuse_linear.PASS,
    fold_onehot.PASS,
    merge_states.PASS,
    fixpoint("simplify", CLEANUP, "sweep the rules of fold_constants, remove_identities, fuse_linear and cse "
             "together until nothing changes"),
]

PASS_NAMES: list[str] = [p.name for p in PIPELINE]
PASSES: dict[str, Pass] = {p.name: p for p in (
    dce.PASS, fold_constants.PASS, remove_identities.PASS, cse.PASS, lift_orbits.PASS, fuse_linear.PASS,
    fold_onehot.PASS, merge_states.PASS)}


def exact_orbits(graph: Graph) -> Graph:
    """`graph` with periodic states lifted to cyclic one-hots and the functions of those folded (lift_orbits,
    fold_onehot), nothing else changed: what a program means where its rotations are rounded cosines, and
    the reference `lsrl verify` interprets (the float64 drift of the rounded orbit is no error of a model)."""
    if not any(isinstance(n.op, LinState) and n.op.B is None for n in graph.nodes):
        return graph
    return rewrite(graph, lift_orbits.RULES + fold_onehot.RULES)[0]


def optimize(graph: Graph, upto: str | None = None) -> tuple[Graph, list[PassReport]]:
    """Run PIPELINE, stopping after the pass named `upto` (all of it when None)."""
    if upto is not None and upto not in PASS_NAMES:
        raise ValueError(f"unknown pass {upto!r}; passes: {', '.join(PASS_NAMES)}")
    return run_passes(graph, PIPELINE, upto)


__all__ = ["PASSES", "PASS_NAMES", "PIPELINE", "Pass", "PassReport", "exact_orbits", "fixpoint", "optimize"]
