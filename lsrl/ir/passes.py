"""The pass interface (graph in, graph out) and a small driver that records what each pass did."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from lsrl.ir.graph import Graph


@dataclass(frozen=True)
class PassReport:
    name: str
    nodes_before: int
    nodes_after: int
    dims_before: int
    dims_after: int
    rewrites: dict[str, int] = field(default_factory=dict)  # rule name -> times applied

    def line(self) -> str:
        rules = ", ".join(f"{k}={v}" for k, v in sorted(self.rewrites.items()) if v) or "no change"
        return (f"{self.name:<18} nodes {self.nodes_before:>4} -> {self.nodes_after:<4} "
                f"dims {self.dims_before:>5} -> {self.dims_after:<5} {rules}")


@dataclass(frozen=True)
class Pass:
    """A named graph-to-graph transformation; `fn` returns the new graph and its rewrite counts."""

    name: str
    fn: Callable[[Graph], tuple[Graph, dict[str, int]]]
    doc: str = ""

    def __call__(self, graph: Graph) -> tuple[Graph, PassReport]:
        new, counts = self.fn(graph)
        s0, s1 = graph.stats(), new.stats()
        return new, PassReport(self.name, s0["nodes"], s1["nodes"], s0["dims"], s1["dims"], counts)


def run_passes(graph: Graph, passes: Sequence[Pass], upto: str | None = None) -> tuple[Graph, list[PassReport]]:
    """Apply passes in order, stopping after the one named `upto` (if given)."""
    reports = []
    for p in passes:
        graph, report = p(graph)
        reports.append(report)
        if p.name == upto:
            break
    return graph, reports
