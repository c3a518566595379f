"""Dead-code elimination: keep only what the output, the probes or the input need."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.passes import Pass
from lsrl.passes.rewrite import live, rewrite


def dce(graph: ir.Graph) -> tuple[ir.Graph, dict[str, int]]:
    if len(live(graph.nodes, (graph.input, *graph.roots()))) == len(graph):  # nothing dead: the graph as it is
        return graph, {"removed": 0}
    new, _ = rewrite(graph, [], prune=True)  # the rebuild drops what live() leaves out
    return new, {"removed": len(graph) - len(new)}


PASS = Pass("dce", dce, "drop nodes that neither the output nor a probe depends on (the input stays)")
