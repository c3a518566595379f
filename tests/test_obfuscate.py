"""Obfuscation: the same function in another unit basis, with placements, manifest and promise in sync."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS

from lsrl import interpret, load_program, save_checkpoint
from lsrl.cli import main
from lsrl.compiling import CompileOptions, compile_program
from lsrl.interpretability import trace
from lsrl.interpretability.obfuscate import obfuscate
from lsrl.verifying import verify_checkpoint

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", ["more_ones", "dyck1", "mod_counter"])
def test_obfuscation_preserves_the_function_and_the_ground_truth(backend, name, tmp_path):
    prog = load_program(str(ROOT / f"programs/{name}.lsrl"))
    c = compile_program(prog, CompileOptions(backend, max_len=64))
    o = obfuscate(c, seed=7)
    x = prog.input.sample(np.random.default_rng(0), 4, 40)
    with torch.no_grad():
        np.testing.assert_array_equal(o.module(torch.tensor(x)).numpy(), c.module(torch.tensor(x)).numpy())
    # the units moved (a permutation, scalings, dead units) but every placement still decodes its value
    before, after = trace(c, x), trace(o, x)
    assert any(not np.array_equal(before.layers[k], after.layers[k]) for k in before.layers if k != "input")
    ref = interpret(o.graph, x, trace=True)
    for node, value in after.values.items():
        np.testing.assert_allclose(value, ref.values[node], rtol=0, atol=1e-9)
    assert o.promise().to_json() == c.promise().to_json()
    save_checkpoint(o, tmp_path / "ck")
    assert verify_checkpoint(prog, tmp_path / "ck", samples=8, length=32).passed


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_probe_on_the_raw_basis_degrades_while_the_decode_still_recovers(backend):
    """A linear probe fitted on the original model's units for `balance` reads the obfuscated model's units
    poorly (the basis moved), while the obfuscated placement's decode reads it exactly."""
    prog = load_program(str(ROOT / "programs/more_ones.lsrl"))
    c = compile_program(prog, CompileOptions(backend, max_len=64))
    o = obfuscate(c, seed=11, dead=2)
    x = prog.input.sample(np.random.default_rng(1), 16, 40)
    y = interpret(c.graph, x).output[..., 0].reshape(-1)  # more_ones' output: is balance > 0
    a0, a1 = trace(c, x), trace(o, x)
    last = list(a0.layers)[-1]
    f0 = np.column_stack([a0.layers[last].reshape(-1, a0.layers[last].shape[-1]), np.ones(y.size)])
    w = np.linalg.lstsq(f0, y, rcond=None)[0]
    f1 = np.column_stack([a1.layers[last].reshape(-1, a1.layers[last].shape[-1])[:, :f0.shape[1] - 1],
                          np.ones(y.size)])
    r2 = [1 - np.sum((f @ w - y) ** 2) / np.sum((y - y.mean()) ** 2) for f in (f0, f1)]
    assert r2[0] > 0.999 and r2[1] < 0.9
    np.testing.assert_allclose(a1.output[..., 0].reshape(-1), y, rtol=0, atol=1e-9)


def test_obfuscate_cli(tmp_path, capsys):
    src = str(ROOT / "programs/parity.lsrl")
    assert main(["obfuscate", src, "--backend", "gru", "--seed", "2", "-o", str(tmp_path / "ck")]) == 0
    assert main(["verify", src, "--checkpoint", str(tmp_path / "ck"), "--samples", "8", "--length", "32"]) == 0
    assert "PASS" in capsys.readouterr().out


def test_weight_noise_degrades_measurably_and_voids_the_promise(tmp_path, capsys):
    prog = load_program(str(ROOT / "programs/dyck1.lsrl"))
    c = compile_program(prog, CompileOptions("rnn", max_len=64))
    from lsrl.interpretability.obfuscate import add_noise, with_noise

    x = prog.input.sample(np.random.default_rng(0), 16, 48)
    ref = interpret(c.graph, x).output
    errs = []
    for sigma in (0.0, 1e-6, 1e-2):
        with torch.no_grad():
            errs.append(float(np.abs(add_noise(c, sigma, seed=1)(torch.tensor(x)).numpy() - ref).max()))
    assert errs[0] == 0 < errs[1] < errs[2]
    noisy = with_noise(c, 1e-3)
    assert all(o.abs_bound == float("inf") for o in noisy.promise().outputs.values())
    assert main(["obfuscate", str(ROOT / "programs/dyck1.lsrl"), "--backend", "lstm", "--noise", "1e-3", "-o",
                 str(tmp_path / "ck")]) == 0
    assert "max abs err" in capsys.readouterr().out
    assert main(["verify", str(ROOT / "programs/dyck1.lsrl"), "--checkpoint", str(tmp_path / "ck"),
                 "--samples", "4", "--length", "16"]) == 1  # a noisy checkpoint claims no bound


def test_obfuscating_a_saved_checkpoint(tmp_path):
    """`lsrl obfuscate FILE --checkpoint DIR`: compiled again from its source with the recorded options,
    checked to be the same model, obfuscated; a checkpoint of another source is refused (E0704)."""
    src = str(ROOT / "programs/dyck1.lsrl")
    assert main(["compile", src, "--backend", "lstm", "--max-len", "64", "-o", str(tmp_path / "ck")]) == 0
    ck, ob = str(tmp_path / "ck"), str(tmp_path / "ob")
    assert main(["obfuscate", src, "--checkpoint", ck, "--seed", "1", "-o", ob]) == 0
    assert main(["verify", src, "--checkpoint", str(tmp_path / "ob"), "--samples", "4", "--length", "32"]) == 0
    assert main(["obfuscate", str(ROOT / "programs/parity.lsrl"), "--checkpoint", str(tmp_path / "ck"), "-o",
                 str(tmp_path / "x")]) == 1
