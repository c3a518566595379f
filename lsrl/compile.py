"""The compiler driver: program -> optimised IR -> range facts -> lowered stack -> backend weights."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import torch

from lsrl.analysis.ranges import DEFAULT_MAX_LEN, analyze
from lsrl.backends import Emitted, get_backend
from lsrl.backends.base import Promise
from lsrl.cached import cached
from lsrl.certify import Certificate, certify
from lsrl.diagnostics import error
from lsrl.ir.graph import Graph
from lsrl.ir.passes import PassReport
from lsrl.lowering import Schedule, Stack, lower
from lsrl.passes import optimize
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

    @cached
    def certificate(self) -> Certificate:
        """When float arithmetic provably computes this model exactly (lsrl.certify)."""
        return certify(self)

    def promise(self, dtype: str | None = None) -> Promise:
        """What the backend guarantees against the float64 interpreter in `dtype` (default: the compiled
        one). Where the certificate shows the model's arithmetic exact in `dtype`, the only allowance left
        is the float64 reference's own rounding, whatever the rounding budget of `dtype` would be."""
        name = dtype or self.options.dtype
        dt, backend, cert = DTYPES[name], get_backend(self.options.backend), self.certificate
        p = backend.promise(dt, self.stack)
        if not cert.exact_in(dt):
            why = cert.reason or f"partial sums reach {cert.bound:.3g}"
            return p if dt == torch.float64 else replace(p, note=f"{p.note}; not certified exact in {name} ({why})")
        ref = backend.promise(torch.float64, self.stack)
        return Promise(p.exact_in_reals, min(p.rel_tol, ref.rel_tol), f"{p.note}; {name} arithmetic certified exact "
                       f"({cert}), so only the float64 reference's rounding is allowed for")


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

    def magnitudes(self, node: int) -> list[float]:
        return self.r[node].magnitudes


def range_facts(graph: Graph, program: Program, max_len: int | None) -> _Facts:
    """Range analysis of `graph` (an optimised program graph) for the program's input domain."""
    return _Facts(analyze(graph, program.input.domain, max_len or DEFAULT_MAX_LEN))


def compile_program(program: Program, options: CompileOptions | None = None) -> Compiled:
    options = options or CompileOptions()
    if options.dtype not in DTYPES:
        raise error("E0702", f"unknown dtype `{options.dtype}`", None, "use float32 or float64")
    backend = get_backend(options.backend)
    graph, reports = program.graph, []
    if options.optimize:
        graph, reports = optimize(graph)
    facts = range_facts(graph, program, options.max_len) if options.backend != "lrnn" else None
    stack, sched = lower(graph)
    emitted = backend.emit(graph, stack, facts)
    if DTYPES[options.dtype] != torch.float64:  # emit gives float64; a no-op .to() still costs ~2 ms
        emitted.module.to(DTYPES[options.dtype])
    return Compiled(program, options, graph, stack, sched, emitted, reports, facts)
