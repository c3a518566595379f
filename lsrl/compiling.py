"""The compiler driver: program -> optimised IR -> range facts -> lowered stack -> backend weights."""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from lsrl.analysis.ranges import DEFAULT_MAX_LEN
from lsrl.backends import Emitted, get_backend
from lsrl.cached import cached
from lsrl.diagnostics import error
from lsrl.guarantee.certify import Certificate, certify
from lsrl.guarantee.facts import Facts, range_facts
from lsrl.guarantee.policy import make_promise
from lsrl.guarantee.promise import Promise
from lsrl.ir.graph import Graph
from lsrl.ir.passes import PassReport
from lsrl.legalize import legalize_mapped
from lsrl.lowering import Stack, lower
from lsrl.passes import optimize
from lsrl.program import Program

DTYPES = {"float32": torch.float32, "float64": torch.float64}


@dataclass(frozen=True)
class CompileOptions:
    backend: str = "lrnn"
    max_len: int | None = None  # None: lsrl.analysis.ranges.DEFAULT_MAX_LEN
    dtype: str = "float64"
    optimize: bool = True

    @property
    def length_limit(self) -> int:
        """The max_len every constant and promise is made for (the default included)."""
        return self.max_len or DEFAULT_MAX_LEN


@dataclass
class Compiled:
    program: Program
    options: CompileOptions
    graph: Graph  # after optimisation
    stack: Stack
    emitted: Emitted
    reports: list[PassReport] = field(default_factory=list)
    known_facts: Facts | None = None  # range facts, when the backend needed them to emit

    @property
    def module(self) -> torch.nn.Module:
        return self.emitted.module

    def parameter_count(self) -> int:
        return sum(t.numel() for t in self.module.state_dict().values())

    @cached
    def facts(self) -> Facts:
        """Range facts of the optimised graph (computed on first use for backends that emit without them)."""
        return self.known_facts or range_facts(self.graph, self.program, self.options.max_len)

    @cached
    def certificate(self) -> Certificate:
        """When float arithmetic provably computes this model exactly (lsrl.guarantee.certify)."""
        return certify(self)

    def promise(self, dtype: str | None = None) -> Promise:
        """Per output: exactness class and proven error bound in `dtype` (default: the compiled one)."""
        return make_promise(self, dtype or self.options.dtype)


def compile_program(program: Program, options: CompileOptions | None = None) -> Compiled:
    options = options or CompileOptions()
    if options.dtype not in DTYPES:
        raise error("E0702", f"unknown dtype `{options.dtype}`", None, "use float32 or float64")
    backend = get_backend(options.backend)
    graph, reports = program.graph, []
    if options.optimize:
        graph, reports = optimize(graph)
    before = graph
    graph, legal, kept = legalize_mapped(graph, backend.target.transitions, options.length_limit,
                                         f"the {backend.name} backend")
    facts = None
    if legal is not None:
        reports.append(legal)
        if backend.target.needs_facts:  # what the analysis proved before the rewrite holds for the nodes kept
            facts = range_facts(graph, program, options.max_len, (range_facts(before, program, options.max_len), kept))
    elif backend.target.needs_facts:
        facts = range_facts(graph, program, options.max_len)
    stack, _ = lower(graph, backend.target.template)
    emitted = backend.emit(graph, stack, facts, DTYPES[options.dtype])
    if DTYPES[options.dtype] != torch.float64:  # emit gives float64; a no-op .to() still costs ~2 ms
        emitted.module.to(DTYPES[options.dtype])
    return Compiled(program, options, graph, stack, emitted, reports, facts)
