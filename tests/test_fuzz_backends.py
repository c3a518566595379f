"""Differential fuzzing, fast tier: random programs compiled on every registered backend.

Each drawn graph becomes a program over a small input domain; every backend either refuses it with a
located diagnostic (an LsrlError with a code), or compiles it to a model whose outputs stay within the
promise on random inputs of length `max_len`, against the float64 interpreter. Backends join by
registering. (Products of random states grow fast: the promise's bound, not a fixed tolerance, decides.)
"""

from __future__ import annotations

import os

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ir_strategies import graphs
from lsrl.backends import BACKENDS
from source_strategies import sources

from lsrl.compiling import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.frontend.elaborate import compile_source
from lsrl.ir.interpreter import interpret
from lsrl.program import Domain, InputSpec, Program
from lsrl.verifying import exact_reference

MAX_LEN = 12
EXAMPLES = int(os.environ.get("LSRL_FUZZ_EXAMPLES", 25))  # per backend; a long run: LSRL_FUZZ_EXAMPLES=2000
DOMAINS = [Domain("set", (-1, 0, 1)), Domain("set", (0, 1)), Domain("interval", (-1, 1))]


@st.composite
def programs(draw) -> Program:
    graph = draw(graphs(max_nodes=10, max_dim=3))
    domain = draw(st.sampled_from(DOMAINS))
    return Program(graph, InputSpec("x", graph.input_dim, domain), file="fuzz.lsrl")


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(prog=programs(), seed=st.integers(0, 2**16), dtype=st.sampled_from(["float64", "float32"]))
def test_random_programs_compile_within_their_promise_or_refuse(backend, prog, seed, dtype):
    try:
        compiled = compile_program(prog, CompileOptions(backend, max_len=MAX_LEN, dtype=dtype))
        promise = compiled.promise(dtype)
    except LsrlError as exc:
        assert exc.diagnostics and exc.diagnostics[0].code.startswith("E")
        return
    x = prog.input.sample(np.random.default_rng(seed), 4, MAX_LEN)
    ref = interpret(prog.graph, x)
    with torch.no_grad():
        y, probes = compiled.module(torch.tensor(x, dtype=getattr(torch, dtype)), probes=True)
    got = {"output": (y.double().numpy(), ref.output)}
    got.update({k: (p.double().numpy(), ref.probes[k]) for k, p in probes.items()})
    for name, (model, want) in got.items():
        finite = np.isfinite(want)
        if not finite.all():  # the float64 reference overflowed: nothing to compare there
            continue
        err = float(np.abs(model - want).max(initial=0.0))
        if err > promise.outputs[name].allowed:  # as verify does: the float64 reference may be the one that is
            exact = exact_reference(prog, x)  # off (a 1/3 the stack folds away): judge against the exact program
            want = exact.output if name == "output" else exact.probes[name]
            err = float(np.abs(model - want).max(initial=0.0))
        assert err <= promise.outputs[name].allowed, (name, err, promise.outputs[name])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(source=sources(), seed=st.integers(0, 2**16), dtype=st.sampled_from(["float64", "float32"]))
def test_random_sources_over_every_construct_compile_within_their_promise_or_refuse(backend, source, seed, dtype):
    """Source text with params, domains, states of every transition kind, functions, loops, ternaries and
    probes (tests/source_strategies.py): compiled within the promise, or refused with a located diagnostic."""
    prog = compile_source(source, "src.lsrl")
    try:
        compiled = compile_program(prog, CompileOptions(backend, max_len=MAX_LEN, dtype=dtype))
        promise = compiled.promise(dtype)
    except LsrlError as exc:
        d = exc.diagnostics[0]
        assert d.code.startswith("E") and (d.span is None or d.span.file == "src.lsrl"), source
        return
    x = prog.input.sample(np.random.default_rng(seed), 4, MAX_LEN)
    ref = exact_reference(prog, x)  # the promise bounds the model's distance to the exact program
    with torch.no_grad():
        y, probes = compiled.module(torch.tensor(x, dtype=getattr(torch, dtype)), probes=True)
    for name, model, want in [("output", y, ref.output)] + [(k, p, ref.probes[k]) for k, p in probes.items()]:
        err = float(np.abs(model.double().numpy() - want).max(initial=0.0))
        assert err <= promise.outputs[name].allowed, (name, err, promise.outputs[name], source)
