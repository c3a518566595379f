"""Obfuscation's change of basis of linear coordinates (issue 14): units' = M units on every backend that has
linear coordinates (lsrl.backends.base.linear_basis), the manifest's decodes in sync, exact for a unimodular M,
a measured (and stated as such) bound for an orthogonal one; backends without linear coordinates say so."""

from __future__ import annotations

import functools
from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS
from lsrl.backends.base import linear_basis

from lsrl import interpret, load, load_program, save_checkpoint
from lsrl.cli import main
from lsrl.compiling import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.interpretability.intervene import Intervention, intervene, node_of
from lsrl.interpretability.obfuscate import obfuscate
from lsrl.interpretability.trace import trace
from lsrl.runtime.checkpoint import build_manifest
from lsrl.verifying import verify_checkpoint

ROOT = Path(__file__).parent.parent
LINEAR = [b for b in sorted(BACKENDS) if linear_basis(BACKENDS[b]) is not None]
NONLINEAR = [b for b in sorted(BACKENDS) if linear_basis(BACKENDS[b]) is None]
PROGRAMS = [("counter", ()), ("parity", ()), ("tok2tok", (("T", 2),))]
# the unimodular models' dtype: the residual-stream backends in float32, the dtype of their HF export, where the
# rebased sums must stay within 2^24 (float64 depthwise convolutions are also slow on CPU); lrnn in float64
# (tok2tok's rebased sums pass 2^24 there: refused in float32, test_refusals_are_clean_errors)
DTYPE = {"lrnn": "float64"}


@functools.cache
def _compiled(backend: str, name: str, params: tuple = (), dtype: str = "float64"):
    prog = load_program(str(ROOT / f"programs/{name}.lsrl"), params=dict(params))
    return prog, compile_program(prog, CompileOptions(backend, max_len=64, dtype=dtype))


def _run(module, x: np.ndarray) -> np.ndarray:
    with torch.no_grad():
        return module(torch.tensor(x, dtype=module.readout.weight.dtype)).double().numpy()


def test_the_backends_with_linear_coordinates():
    assert {"lrnn", "mamba", "hawk"} <= set(LINEAR) and {"rnn", "gru", "lstm"} <= set(NONLINEAR)


@pytest.mark.parametrize("backend", LINEAR)
@pytest.mark.parametrize(("name", "params"), PROGRAMS)
def test_a_unimodular_basis_is_exact_and_keeps_the_ground_truth(backend, name, params):
    prog, c = _compiled(backend, name, params, DTYPE.get(backend, "float32"))
    o = obfuscate(c, seed=1, basis="unimodular")
    x = prog.input.sample(np.random.default_rng(0), 4, 40)
    before, after = trace(c, x), trace(o, x)
    # the same function, bit for bit, and the interpreter's exactly (integer programs: exact integer arithmetic)
    np.testing.assert_array_equal(after.output, before.output)
    np.testing.assert_array_equal(after.output, interpret(prog.reference_graph, x).output)
    assert o.promise().outputs == c.promise().outputs and "unimodular" in o.promise().note
    # M and M^-1 are integer matrices and really mix (not a signed permutation)
    for M, Mi in o.rebase.bases:
        np.testing.assert_array_equal(M @ Mi, np.eye(len(M)))
        assert np.array_equal(M, np.round(M)) and np.array_equal(Mi, np.round(Mi))
        assert len(M) < 2 or ((M != 0).sum(axis=1) > 1).any()
    # every placement decodes its value exactly from the rebased units
    ref = interpret(o.graph, x, trace=True)
    for node, value in after.values.items():
        np.testing.assert_array_equal(value, ref.values[node])
    # no unit holds a value alone any more where a layer holds several (a layer of one value cannot hide it)
    for layer, units in before.layers.items():
        if layer == "input":
            continue
        cols = units.reshape(-1, units.shape[-1])
        live = [v for v in cols.T if v.std() > 0]
        if np.linalg.matrix_rank(np.stack([*live, np.ones(len(cols))])) < 3:  # two values, affinely independent
            continue
        got = after.layers[layer].reshape(-1, after.layers[layer].shape[-1])
        for v in live:
            assert not any(np.array_equal(u, v) or np.array_equal(u, -v) for u in got.T), layer


@pytest.mark.parametrize("backend", LINEAR)
def test_a_raw_basis_probe_degrades_while_the_decode_recovers(backend):
    """As the walkthrough (dyck1's `depth`): a least-squares probe fitted on the compiled model's last layer
    reads the rebased units poorly, while the obfuscated manifest's decode still gives `depth` exactly."""
    prog, c = _compiled(backend, "dyck1")
    o = obfuscate(c, seed=1, basis="unimodular", dead=0)
    x = prog.input.sample(np.random.default_rng(2), 16, 40)
    a0, a1 = trace(c, x), trace(o, x)
    last = list(a0.layers)[-1]
    f0, f1 = (np.column_stack([a.layers[last].reshape(-1, a.layers[last].shape[-1]), np.ones(x[..., 0].size)])
              for a in (a0, a1))
    depth = interpret(c.graph, x, trace=True).named(c.graph)["depth"]
    w = np.linalg.lstsq(f0, depth.reshape(-1), rcond=None)[0]
    r2 = [1 - np.sum((f @ w - depth.reshape(-1)) ** 2) / np.sum((depth - depth.mean()) ** 2) for f in (f0, f1)]
    assert r2[0] > 0.999 and r2[1] < 0.9
    np.testing.assert_array_equal(a1.named()["depth"], depth)
    # an intervention on the rebased model: its units are shared with the layer's other values, and the patch
    # keeps those fixed while it moves `depth`, so the model still matches the interpreter's intervention (a
    # shared residual stream also carries earlier layers' values, which a layer does not list: refused)
    manifest = build_manifest(o)
    node = node_of(manifest, "depth")
    other = interpret(c.graph, prog.input.sample(np.random.default_rng(9), 16, 40), trace=True)
    iv = [Intervention(node, (5,), other.values[node])]
    if manifest["basis"]["shared"]:
        with pytest.raises(LsrlError) as exc:
            intervene(o, x, iv)
        assert exc.value.diagnostics[0].code == "E1006"
    else:
        iv_ref, iv_y, _ = intervene(o, x, iv)
        np.testing.assert_allclose(iv_y, iv_ref.output, rtol=0, atol=1e-6)


@pytest.mark.parametrize("backend", LINEAR)
def test_an_orthogonal_basis_states_a_measured_bound_and_keeps_it(backend, tmp_path):
    prog, c = _compiled(backend, "dyck1")
    o = obfuscate(c, seed=2, basis="orthogonal", samples=4)
    for M, Mi in o.rebase.bases:
        np.testing.assert_allclose(M @ M.T, np.eye(len(M)), atol=1e-12)
        np.testing.assert_array_equal(Mi, M.T)
    p = o.promise()
    assert not p.certified and "measured, not proven" in p.note
    for k, out in p.outputs.items():
        assert out.exactness == "bounded" and 0 < out.abs_bound < 1e-6, k
    # fresh inputs stay within the stated tolerance; the decodes recover every value within it
    x = prog.input.sample(np.random.default_rng(5), 8, 64)
    err = np.abs(_run(o.module, x) - interpret(prog.reference_graph, x).output).max()
    assert 0 < err <= p.output.allowed
    ref = interpret(o.graph, x, trace=True)
    for node, value in trace(o, x).values.items():
        np.testing.assert_allclose(value, ref.values[node], rtol=0, atol=1e-9)
    # an orthogonal M^-1 has orthonormal rows: the minimum-norm patch of one value leaves the others alone
    node = node_of(build_manifest(o), "depth")
    other = interpret(c.graph, prog.input.sample(np.random.default_rng(9), 8, 64), trace=True)
    iv_ref, iv_y, _ = intervene(o, x, [Intervention(node, (5,), other.values[node])])
    np.testing.assert_allclose(iv_y, iv_ref.output, rtol=0, atol=1e-9)
    save_checkpoint(o, tmp_path / "ck")
    assert verify_checkpoint(prog, tmp_path / "ck", samples=4, length=64, seed=3).passed


@pytest.mark.parametrize("backend", NONLINEAR)
def test_backends_without_linear_coordinates_say_so(backend, tmp_path, capsys):
    _, c = _compiled(backend, "parity")
    with pytest.raises(LsrlError, match="no change of basis applies"):
        obfuscate(c, basis="unimodular")
    src = str(ROOT / "programs/parity.lsrl")
    assert main(["obfuscate", src, "--backend", backend, "--basis", "orthogonal", "-o", str(tmp_path / "ck")]) == 0
    assert f"no change of basis applies to backend {backend}" in capsys.readouterr().out


@pytest.mark.parametrize("backend", LINEAR)
def test_the_command_saves_a_rebased_checkpoint_that_verifies(backend, tmp_path, capsys):
    src, ck = str(ROOT / "programs/dyck1.lsrl"), str(tmp_path / "ck")
    assert main(["obfuscate", src, "--backend", backend, "--max-len", "64", "--basis", "unimodular", "--seed", "3",
                 "-o", ck]) == 0
    out = capsys.readouterr().out
    assert "change of basis: unimodular" in out and "exact in float64" in out
    prog, c = _compiled(backend, "dyck1")
    x = prog.input.sample(np.random.default_rng(1), 4, 64)
    np.testing.assert_array_equal(_run(load(ck), x), _run(c.module, x))
    ref = interpret(c.graph, x, trace=True)  # the saved manifest decodes every value from the saved model
    for node, value in trace(ck, x).values.items():
        np.testing.assert_array_equal(value, ref.values[node])
    assert main(["verify", src, "--checkpoint", ck, "--samples", "4", "--length", "32"]) == 0
    assert "PASS" in capsys.readouterr().out


@pytest.mark.slow  # transformers' import and model build
def test_a_rebased_stream_exports_to_hugging_face_unchanged(tmp_path):
    """The embedding and mamba's constant coordinate keep their basis, so the HF export needs nothing new."""
    transformers = pytest.importorskip("transformers")
    from lsrl.runtime.hf_export import export_hf, model_class

    prog, c = _compiled("mamba", "parity", dtype="float32")
    ck = save_checkpoint(obfuscate(c, seed=5, basis="unimodular"), tmp_path / "ck")
    model = getattr(transformers, model_class(ck)).from_pretrained(export_hf(ck, tmp_path / "hf")).eval()
    x = np.random.default_rng(7).integers(0, 2, (4, 64))
    with torch.no_grad():
        got = model(input_ids=torch.tensor(x)).logits.argmax(-1).numpy()
    np.testing.assert_array_equal(got, interpret(prog.reference_graph, x[..., None].astype(float)).output[..., 0])


def test_refusals_are_clean_errors(tmp_path, capsys):
    # float32 cannot hold tok2tok's rebased sums exactly at the default max_len: E0707, exit 1, no traceback
    tok = str(ROOT / "programs/tok2tok.lsrl")
    assert main(["obfuscate", tok, "-D", "T=2", "--backend", "lrnn", "--dtype", "float32", "--basis", "unimodular",
                 "-o", str(tmp_path / "a")]) == 1
    err = capsys.readouterr().err
    assert "E0707" in err and "float32" in err and "Traceback" not in err
    # a program that is not integer arithmetic cannot stay exact
    src = tmp_path / "real.lsrl"
    src.write_text("input x[1] in [0, 1]\noutput accumulate(x / 2)\n")
    for backend in LINEAR:
        assert main(["obfuscate", str(src), "--backend", backend, "--max-len", "16", "--basis", "unimodular",
                     "-o", str(tmp_path / backend)]) == 1
        assert "E0707" in capsys.readouterr().err
    # usage errors: exit 2
    dyck = str(ROOT / "programs/dyck1.lsrl")
    assert main(["obfuscate", dyck, "--basis", "diagonal", "-o", str(tmp_path / "b")]) == 2
    assert main(["obfuscate", dyck, "--basis", "unimodular", "--basis-rounds", "0", "-o", str(tmp_path / "c")]) == 2
    assert "E0900" in capsys.readouterr().err
