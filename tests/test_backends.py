"""Backends: compiled lrnn and rnn models agree with the interpreter; the rnn refuses inexact gates."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import get_backend
from lsrl.backends.base import PresetLinear
from lsrl.backends.rnn import PresetRNN

from lsrl import compile_source, interpret, load_program
from lsrl.compile import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.lowering import lower

ROOT = Path(__file__).parent.parent
PROGRAMS = sorted(ROOT.glob("programs/*.lsrl"))


class StubFacts:
    """Facts observed on sample inputs (not proven), to exercise the rnn construction on its own."""

    def __init__(self, graph, x=None, bound=64.0):
        self.graph, self.b = graph, bound
        values = interpret(graph, x, trace=True).values if x is not None else {}
        self.booleans = {n for n, v in values.items() if np.isin(v, (0.0, 1.0)).all()}

    def is_boolean(self, n):
        return n in self.booleans

    def bound(self, n):
        return self.b

    def nonnegative(self, n):
        return self.graph[n].op.mnemonic == "relu"


def _run(module, x, dtype=torch.float64):
    with torch.no_grad():
        return module(torch.tensor(x, dtype=dtype)).double().numpy()


GATED = """
input x[1] in {0..5}
state c = 0
c <- c + 1
let flag = larger(c, 3)
probe f = flag
output flag * x + (1 - flag) * c
"""


@pytest.mark.parametrize("backend", ["lrnn", "rnn"])
def test_emit_matches_interpreter_with_stub_facts(backend):
    prog = compile_source(GATED, "g.lsrl")
    stack, _ = lower(prog.graph)
    x = prog.input.sample(np.random.default_rng(0), 6, 30)
    em = get_backend(backend).emit(prog.graph, stack, StubFacts(prog.graph, x))
    np.testing.assert_allclose(_run(em.module, x), interpret(prog.graph, x).output, rtol=0, atol=1e-12)


def test_rnn_refuses_a_product_of_two_non_booleans():
    prog = compile_source("input x[1]\nstate s = 0\ns <- s + x\nlet sq = s * x\noutput sq\n", "sq.lsrl")
    stack, _ = lower(prog.graph)
    with pytest.raises(LsrlError) as exc:
        get_backend("rnn").emit(prog.graph, stack, StubFacts(prog.graph))
    d = exc.value.diagnostics[0]
    assert d.code == "E0701" and d.span.line == 4 and "lrnn" in d.hint


def test_rnn_units_are_plain_torch_rnn_layers():
    prog = compile_source(GATED, "g.lsrl")
    stack, _ = lower(prog.graph)
    em = get_backend("rnn").emit(prog.graph, stack, StubFacts(prog.graph, np.ones((1, 8, 1))))
    kinds = {type(m).__name__ for m in em.module.modules()}
    assert kinds <= {"ReLURNNStack", "ModuleList", "PresetRNN", "PresetLinear"}
    # the layers differ from torch.nn.RNN / nn.Linear only in skipping the random init (every weight is set)
    for cls in (PresetRNN, PresetLinear):
        assert {k for k, v in vars(cls).items() if callable(v)} == {"reset_parameters"}
    assert isinstance(em.module.readout, torch.nn.Linear)
    for rnn in em.module.rnns:
        assert isinstance(rnn, torch.nn.RNN) and all(torch.isfinite(p).all() for p in rnn.parameters())
        assert rnn.nonlinearity == "relu" and rnn.num_layers == 1


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_lrnn_programs(path, dtype):
    if dtype == "float32" and path.stem == "vec2vec":
        pytest.skip("vec2vec's cell test has ramps of width eps = 1e-6 (scale 1e6): below float32 resolution")
    prog = load_program(str(path))
    compiled = compile_program(prog, CompileOptions("lrnn", dtype=dtype, optimize=False))
    x = prog.input.sample(np.random.default_rng(2), 8, 64)
    ref = interpret(prog.graph, x).output
    y = _run(compiled.module, x, getattr(torch, dtype))
    tol = 1e-9 if dtype == "float64" else 1e-3
    np.testing.assert_allclose(y, ref, rtol=tol, atol=tol * max(1.0, np.abs(ref).max()))


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_rnn_programs(path):
    pytest.importorskip("lsrl.analysis.ranges")
    pytest.importorskip("lsrl.passes")
    prog = load_program(str(path))
    compiled = compile_program(prog, CompileOptions("rnn", max_len=256))
    x = prog.input.sample(np.random.default_rng(3), 8, 64)
    ref = interpret(prog.graph, x).output
    np.testing.assert_allclose(_run(compiled.module, x), ref, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(ref).max()))


def test_unknown_backend_is_a_user_error():
    with pytest.raises(LsrlError) as exc:
        get_backend("lstm2")
    assert exc.value.diagnostics[0].code == "E0700"


@pytest.mark.parametrize("coupled", [0, 1, 3, 12])
def test_rnn_layers_run_by_parts_match_the_vanilla_module(coupled):
    """The rnn module's forward runs uncoupled units as one batched matmul and loops over the coupled ones
    only (all of them when most are coupled): integer weights and inputs give the vanilla result bit for
    bit, real ones within a few ulp."""
    from lsrl.backends.rnn import _layer

    gen = torch.Generator().manual_seed(coupled)
    for integer in (True, False):
        rnn = torch.nn.RNN(5, 20, nonlinearity="relu", batch_first=True, dtype=torch.float64)
        w_hh = torch.zeros(20, 20, dtype=torch.float64)
        idx = torch.randperm(20, generator=gen)[:coupled]
        w_hh[idx.unsqueeze(1), idx] = torch.randint(-1, 2, (coupled, coupled), generator=gen).double() / 2
        x = torch.randint(-3, 4, (4, 30, 5), generator=gen).double()
        with torch.no_grad():
            rnn.weight_hh_l0.copy_(w_hh)
            if integer:
                rnn.weight_ih_l0.copy_(torch.randint(-2, 3, (20, 5), generator=gen).double())
                rnn.bias_ih_l0.copy_(torch.randint(-2, 3, (20,), generator=gen).double())
                rnn.bias_hh_l0.zero_()
            want, got = rnn(x)[0], _layer(rnn, x)
        if integer:
            assert torch.equal(got, want)
        else:
            torch.testing.assert_close(got, want, rtol=1e-13, atol=1e-13)
