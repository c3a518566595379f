"""Lowering: from an (optimised) IR graph to an architecture-neutral stack of state/MLP/gate stages."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.lowering.build import STAGE_RULES, readout
from lsrl.lowering.forms import forms
from lsrl.lowering.schedule import Schedule, schedule
from lsrl.lowering.stack import GateStage, Layout, MLPStage, Readout, Segment, Stack, StateStage, run_stack


def lower(graph: ir.Graph) -> tuple[Stack, Schedule]:
    """Place every value at its earliest layer phase, carry it only while live, and emit stage matrices."""
    fs = forms(graph)
    sched = schedule(graph, fs)
    stages = tuple(STAGE_RULES[p % 3](graph, fs, sched, p) for p in sched.positions)
    last = sched.layouts[sched.last]
    probes = tuple((name, readout(fs[i], last)) for name, i in graph.probes)
    stack = Stack(graph.input_dim, sched.layouts[-1], stages, readout(fs[graph.output], last), probes)
    return stack, sched


__all__ = ["GateStage", "Layout", "MLPStage", "Readout", "Schedule", "Segment", "Stack", "StateStage", "lower",
           "run_stack"]
