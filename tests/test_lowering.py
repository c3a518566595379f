"""Lowering: the stack interpreter agrees with the IR interpreter; schedule and liveness behave."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from lsrl import compile_source, interpret, load_program
from lsrl.lowering import lower, run_stack

ROOT = Path(__file__).parent.parent
PROGRAMS = sorted(ROOT.glob("programs/*.lsrl"))


def _agree(graph, x, rtol=1e-12):
    ref = interpret(graph, x)
    stack, _ = lower(graph)
    y, probes = run_stack(stack, x)
    np.testing.assert_allclose(y, ref.output, rtol=rtol, atol=rtol)
    for name, v in probes.items():
        np.testing.assert_allclose(v, ref.probes[name], rtol=rtol, atol=rtol)
    return stack


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_programs_lower_exactly(path):
    prog = load_program(str(path))
    x = prog.input.sample(np.random.default_rng(0), 8, 40)
    _agree(prog.graph, x)


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_programs_lower_after_optimisation(path):
    passes = pytest.importorskip("lsrl.passes")
    prog = load_program(str(path))
    graph, _ = passes.optimize(prog.graph)
    x = prog.input.sample(np.random.default_rng(1), 8, 40)
    ref = interpret(prog.graph, x)
    stack, _ = lower(graph)
    y, _ = run_stack(stack, x)
    np.testing.assert_allclose(y, ref.output, rtol=1e-12, atol=1e-12)


def test_exact_stack_matches_exact_interpreter():
    src = """
input x[1] in {0, 1}
state c = 1/3
c <- 2/3 * c + x
let r = relu(c - 1/2)
output r * (x + 1/7) + c
"""
    prog = compile_source(src, "t.lsrl")
    x = np.empty((2, 9, 1), dtype=object)
    from fractions import Fraction
    rng = np.random.default_rng(3)
    x.reshape(-1)[:] = [Fraction(int(v)) for v in rng.integers(0, 2, x.size)]
    ref = interpret(prog.graph, x, exact=True).output
    stack, _ = lower(prog.graph)
    y, _ = run_stack(stack, x, exact=True)
    assert (y == ref).all()


def test_phases_and_depth():
    # state -> relu -> gate -> state: one layer for the first three, a second layer for the last state
    src = """
input x[1]
state a = 0
a <- a + x
let r = relu(a)
let g = r * x
state b = 0
b <- b + g
output b
"""
    prog = compile_source(src, "t.lsrl")
    stack = _agree(prog.graph, np.random.default_rng(0).normal(size=(3, 12, 1)))
    assert [s.kind for s in stack.stages] == ["state", "mlp", "gate", "state"]


def test_values_are_carried_only_while_live():
    # `a` is needed by the last state only through `r`; once `r` exists, `a` must not be carried on
    src = """
input x[1]
state a = 0
a <- a + x
let r = relu(a)
state b = 0
b <- b + r
state c = 0
c <- c + b
output c
"""
    prog = compile_source(src, "t.lsrl")
    stack, sched = lower(prog.graph)
    a = next(n.id for n in prog.graph.nodes if n.label == "a")
    holding = [i for i, st in enumerate(stack.stages) if any(s.node == a for s in st.out.segments)]
    assert holding == [0]
    assert all(st.out.width <= 3 for st in stack.stages)
    _agree(prog.graph, np.random.default_rng(0).normal(size=(2, 10, 1)))


def test_output_that_is_linear_in_input_only():
    prog = compile_source("input x[2]\nstate s = 0\ns <- s + 1\nprobe p = 2 * x\noutput [[1, 1]] @ x + s\n",
                          "t.lsrl")
    _agree(prog.graph, np.random.default_rng(0).normal(size=(2, 5, 2)))
