"""The compiler driver: program -> optimised IR -> range facts -> lowered stack -> backend weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lsrl.backends import Emitted, get_backend
from lsrl.diagnostics import error
from lsrl.ir.graph import Graph
from lsrl.ir.passes import PassReport
from lsrl.lowering import Schedule, Stack, lower
from lsrl.program import Program

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class CompileOptions:
    backend: str = "lrnn"
    max_len: int | None = None  # None: lsrl.analysis.ranges.DEFAULT_MAX_LEN
    dtype: str = "float64"
    optimize: bool = True


@dataclass
class Compiled:
    program: Program
    options: CompileOptions
    graph: Graph  # after optimisation
    stack: Stack
    schedule: Schedule
    emitted: Emitted
    reports: list[PassReport] = field(default_factory=list)
    facts: object | None = None

    @property
    def module(self) -> torch.nn.Module:
        return self.emitted.module

    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.module.state_dict().values())


class _Facts:
    """Adapts lsrl.analysis.ranges to what backends ask (ValueFacts)."""

    def __init__(self, ranges):
        self.r = ranges

    def is_boolean(self, node: int) -> bool:
        return self.r.is_boolean(node)

    def bound(self, node: int) -> float:
        return self.r.require_bound(node, "the rnn backend's gate constant")

    def nonnegative(self, node: int) -> bool:
        return self.r.nonnegative(node)


def compile_program(program: Program, options: CompileOptions | None = None) -> Compiled:
    options = options or CompileOptions()
    if options.dtype not in DTYPES:
        raise error("E0702", f"unknown dtype `{options.dtype}`", None, "use float32 or float64")
    backend = get_backend(options.backend)
    graph, reports = program.graph, []
    if options.optimize:
        from lsrl.passes import optimize

        graph, reports = optimize(graph)
    facts = None
    if options.backend != "lrnn":
        from lsrl.analysis.ranges import DEFAULT_MAX_LEN, analyze

        max_len = options.max_len or DEFAULT_MAX_LEN
        facts = _Facts(analyze(graph, program.input.domain, max_len))
    stack, sched = lower(graph)
    emitted = backend.emit(graph, stack, facts)
    emitted.module.to(DTYPES[options.dtype])
    return Compiled(program, options, graph, stack, sched, emitted, reports, facts)
