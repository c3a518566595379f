"""Backends: every compiled model agrees with the interpreter; the rnn refuses inexact gates (gru/lstm bound
them); the rnn's layers are vanilla nn.RNN modules whose forward only runs the same computation by parts."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS, get_backend
from lsrl.backends.base import PresetLinear
from lsrl.backends.rnn import PresetRNN

from lsrl import compile_source, interpret, load_program
from lsrl.compiling import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.guarantee.facts import range_facts
from lsrl.lowering import lower

ROOT = Path(__file__).parent.parent
PROGRAMS = sorted(ROOT.glob("programs/*.lsrl"))
NAMES = sorted(BACKENDS)


def _run(module, x, dtype=torch.float64):
    with torch.no_grad():
        return module(torch.tensor(x, dtype=dtype)).double().numpy()


def _emit(backend: str, prog, max_len: int = 64):
    """The backend's emission from the unoptimised graph, with the range facts compile_program would use."""
    b = get_backend(backend)
    stack, _ = lower(prog.graph, b.target.template)
    facts = range_facts(prog.graph, prog, max_len) if b.target.needs_facts else None
    return b.emit(prog.graph, stack, facts)


GATED = """
input x[1] in {0..5}
state c = 0
c <- c + 1
let flag = larger(c, 3)
probe f = flag
output flag * x + (1 - flag) * c
"""

# a product of two factors that are neither 0/1 nor of few known values
SQUARE = "input x[1] in [-1, 1]\nstate s = 0\ns <- s + x\nlet sq = s * x\noutput sq\n"


@pytest.mark.parametrize("backend", NAMES)
def test_emit_matches_interpreter(backend):
    prog = compile_source(GATED, "g.lsrl")
    x = prog.input.sample(np.random.default_rng(0), 6, 30)
    em = _emit(backend, prog)
    np.testing.assert_allclose(_run(em.module, x), interpret(prog.graph, x).output, rtol=0, atol=1e-12)


def test_rnn_refuses_a_product_of_two_non_booleans():
    prog = compile_source(SQUARE, "sq.lsrl")
    with pytest.raises(LsrlError) as exc:
        _emit("rnn", prog)
    d = exc.value.diagnostics[0]
    assert d.code == "E0701" and d.span.line == 4 and "lrnn" in d.hint
    with pytest.raises(LsrlError) as exc:  # the driver refuses it the same way
        compile_program(prog, CompileOptions("rnn", max_len=64))
    assert exc.value.diagnostics[0].code == "E0701"


def test_e0701_names_unnamed_factors_by_their_source_text():
    from lsrl.diagnostics import SOURCES

    src = "input x[1] in [0, 1]\nlet a = accumulate(x)\noutput a * (x + 1)\n"
    SOURCES.add("named.lsrl", src)
    with pytest.raises(LsrlError) as exc:
        compile_program(compile_source(src, "named.lsrl"), CompileOptions("rnn", max_len=64))
    assert "(`a` and `x + 1`)" in exc.value.diagnostics[0].message


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("backend", ["gru", "lstm"])
def test_gated_backends_approximate_a_product_of_two_non_booleans_within_the_promise(backend, dtype):
    prog = compile_source(SQUARE, "sq.lsrl")
    compiled = compile_program(prog, CompileOptions(backend, max_len=64, dtype=dtype))
    promise = compiled.promise()
    assert promise.output.exactness == "bounded" and promise.max_len == 64
    assert promise.output.allowed < (1e-6 if dtype == "float64" else 0.1)  # a useful bound (|s x| <= 64)
    x = prog.input.sample(np.random.default_rng(1), 32, 64)
    x[:4] = np.sign(x[:4])  # the extremes too: |s| reaches 64
    err = np.abs(_run(compiled.module, x, getattr(torch, dtype)) - interpret(prog.graph, x).output).max()
    assert 0 < err <= promise.output.allowed  # approximate (not exact), and within the bound


def _overridden(cls: type, torch_cls: type) -> set[str]:
    """The methods `cls` defines (itself or through a mixin) in place of `torch_cls`'s."""
    return {k for k in dir(cls) if callable(getattr(cls, k)) and not k.startswith("__")
            and getattr(cls, k) is not getattr(torch_cls, k, None)}


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_gated_and_rnn_layers_are_vanilla_torch_layers(backend):
    """Every backend whose layers are torch recurrent modules uses the vanilla class, changing only the init
    (and, for nn.RNN, a forward computing the same result by parts)."""
    module = _emit(backend, compile_source(GATED, "g.lsrl")).module
    layers = getattr(module, get_backend(backend).prefix)
    if not isinstance(layers[0], torch.nn.RNNBase):
        pytest.skip(f"{backend} layers are not torch recurrent modules")
    for layer in layers:
        torch_cls = next(c for c in type(layer).__mro__ if c.__module__.startswith("torch.nn"))
        assert _overridden(type(layer), torch_cls) <= {"reset_parameters", "forward"}
        assert layer.num_layers == 1 and layer.batch_first and not layer.bidirectional


def test_rnn_units_are_plain_torch_rnn_layers():
    prog = compile_source(GATED, "g.lsrl")
    em = _emit("rnn", prog)
    kinds = {type(m).__name__ for m in em.module.modules()}
    assert kinds <= {"ReLURNNStack", "ModuleList", "PresetRNN", "PresetLinear"}
    # the layers differ from torch.nn.RNN / nn.Linear only in skipping the random init (every weight is set)
    # and, for the RNN, in a forward that computes nn.RNN.forward's result by parts
    assert _overridden(PresetRNN, torch.nn.RNN) == {"reset_parameters", "forward"}
    assert _overridden(PresetLinear, torch.nn.Linear) == {"reset_parameters"}
    assert isinstance(em.module.readout, torch.nn.Linear)
    gen = torch.Generator().manual_seed(0)
    h = torch.randint(0, 6, (5, 40, 1), generator=gen).double()  # inputs of the domain: exact arithmetic
    for rnn in em.module.rnns:
        assert isinstance(rnn, torch.nn.RNN) and all(torch.isfinite(p).all() for p in rnn.parameters())
        assert rnn.nonlinearity == "relu" and rnn.num_layers == 1
        with torch.no_grad():
            got, want = rnn(h), torch.nn.RNN.forward(rnn, h)
            real = torch.randn(3, 25, rnn.input_size, generator=gen, dtype=torch.float64)
            got_r, want_r = rnn(real), torch.nn.RNN.forward(rnn, real)
        for g, w in zip(got, want, strict=True):
            assert g.shape == w.shape and torch.equal(g, w)
        for g, w in zip(got_r, want_r, strict=True):
            torch.testing.assert_close(g, w, rtol=1e-13, atol=1e-13)
        h = got[0]


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
@pytest.mark.parametrize("backend", NAMES)
def test_programs(backend, path):
    prog = load_program(str(path))
    compiled = compile_program(prog, CompileOptions(backend, max_len=256))
    x = prog.input.sample(np.random.default_rng(3), 8, 64)
    ref = interpret(prog.graph, x).output
    np.testing.assert_allclose(_run(compiled.module, x), ref, rtol=1e-9, atol=1e-9 * max(1.0, np.abs(ref).max()))


def test_unknown_backend_is_a_user_error():
    with pytest.raises(LsrlError) as exc:
        get_backend("lstm2")
    assert exc.value.diagnostics[0].code == "E0700"


def _preset_rnn(w_ih, b_ih, w_hh, b_hh) -> PresetRNN:
    rnn = PresetRNN(w_ih.shape[1], w_ih.shape[0], nonlinearity="relu", batch_first=True, dtype=torch.float64)
    with torch.no_grad():
        for p, v in ((rnn.weight_ih_l0, w_ih), (rnn.bias_ih_l0, b_ih), (rnn.weight_hh_l0, w_hh),
                     (rnn.bias_hh_l0, b_hh)):
            p.copy_(v)
    return rnn


@pytest.mark.parametrize("coupled", [0, 1, 3, 12])
def test_rnn_layers_run_by_parts_match_the_vanilla_module(coupled):
    """PresetRNN.forward runs uncoupled units as one batched matmul and loops over the coupled ones only (all
    of them, in nn.RNN.forward, when most are coupled): integer weights and inputs give the vanilla result
    bit for bit, real ones within a few ulp; the last state h_n too."""
    gen = torch.Generator().manual_seed(coupled)
    for integer in (True, False):
        w_hh = torch.zeros(20, 20, dtype=torch.float64)
        idx = torch.randperm(20, generator=gen)[:coupled]
        w_hh[idx.unsqueeze(1), idx] = torch.randint(-1, 2, (coupled, coupled), generator=gen).double() / 2
        x = torch.randint(-3, 4, (4, 30, 5), generator=gen).double()
        if integer:
            w_ih = torch.randint(-2, 3, (20, 5), generator=gen).double()
            b_ih, b_hh = torch.randint(-2, 3, (20,), generator=gen).double(), torch.zeros(20, dtype=torch.float64)
        else:
            w_ih = torch.randn(20, 5, generator=gen, dtype=torch.float64)
            b_ih, b_hh = (torch.randn(20, generator=gen, dtype=torch.float64) for _ in range(2))
        rnn = _preset_rnn(w_ih, b_ih, w_hh, b_hh)
        with torch.no_grad():
            got, want = rnn(x), torch.nn.RNN.forward(rnn, x)
        assert len(got) == 2 and got[1].shape == want[1].shape == (1, 4, 20)
        for g, w in zip(got, want, strict=True):
            if integer:
                assert torch.equal(g, w)
            else:
                torch.testing.assert_close(g, w, rtol=1e-13, atol=1e-13)


def test_rnn_layer_falls_back_to_the_vanilla_forward():
    """An initial state, unbatched input or a time-major layer take nn.RNN.forward (same results)."""
    gen = torch.Generator().manual_seed(7)
    w_hh = torch.zeros(6, 6, dtype=torch.float64)
    w_hh[0, 0] = 1.0
    rnn = _preset_rnn(torch.randint(-2, 3, (6, 3), generator=gen).double(), torch.ones(6, dtype=torch.float64),
                      w_hh, torch.zeros(6, dtype=torch.float64))
    x = torch.randint(-3, 4, (2, 9, 3), generator=gen).double()
    hx = torch.rand(1, 2, 6, generator=gen, dtype=torch.float64)
    with torch.no_grad():
        for args in ((x, hx), (x[0],), (x[0], hx[:, 0])):
            for g, w in zip(rnn(*args), torch.nn.RNN.forward(rnn, *args), strict=True):
                assert torch.equal(g, w)
        full = rnn(x)[0]
        assert torch.equal(rnn(x[:1])[0], full[:1])
        assert torch.equal(rnn(x[:, :0])[0], full[:, :0])  # an empty sequence: no steps (nn.RNN refuses it)
        tm = PresetRNN(3, 6, nonlinearity="relu", batch_first=False, dtype=torch.float64)
        tm.load_state_dict(rnn.state_dict())
        for g, w in zip(tm(x.transpose(0, 1)), rnn(x), strict=True):
            assert torch.equal(g.transpose(0, 1) if g.shape[0] == 9 else g, w)
