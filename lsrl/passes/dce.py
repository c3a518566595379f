"""Dead-code elimination: keep only what the output, the probes or the input need."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.ir.passes import Pass
from lsrl.passes.rewrite import rewrite


def dce(graph: ir.Graph) -> tuple[ir.Graph, dict[str, int]]:
    new, _ = rewrite(graph, [], prune=True)  # the rebuild itself drops unreachable nodes
    return new, {"removed": len(graph) - len(new)}


PASS = Pass("dce", dce, "drop nodes that neither the output nor a probe depends on (the input stays)")
