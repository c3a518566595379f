"""Lowering: from an (optimised) IR graph to an architecture-neutral stack of state/MLP/gate stages."""

from __future__ import annotations

from lsrl.ir import graph as ir
from lsrl.lowering.build import STAGE_RULES, readout
from lsrl.lowering.forms import forms
from lsrl.lowering.schedule import Schedule, schedule
from lsrl.lowering.stack import GateStage, Layout, MLPStage, Readout, Segment, Stack, StateStage, run_stack
from lsrl.lowering.template import STATE_MLP_GATE, Template


def lower(graph: ir.Graph, template: Template = STATE_MLP_GATE) -> tuple[Stack, Schedule]:
    """Place every value at its earliest layer phase, carry it only while live, and emit stage matrices."""
    fs = forms(graph)
    sched = schedule(graph, fs, template)
    stages = tuple(STAGE_RULES[template.kind_at(p)](graph, fs, sched, p) for p in sched.positions)
    last = sched.layouts[sched.last]
    probes = tuple((name, readout(fs[i], last)) for name, i in graph.probes)
    stack = Stack(graph.input_dim, sched.layouts[-1], stages, readout(fs[graph.output], last), probes)
    return stack, sched


__all__ = ["GateStage", "Layout", "MLPStage", "Readout", "STATE_MLP_GATE", "Schedule", "Segment", "Stack", "StateStage",
           "Template", "lower", "run_stack"]
