"""lsrl.interpretability.trace: hooked activations, unit labels and decoded values, on every backend."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS, get_backend
from shipped import compiled

from lsrl import interpret, save_checkpoint
from lsrl.cli import main
from lsrl.interpretability import trace


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", ["more_ones", "dyck1", "parity", "mod_counter"])
def test_traced_values_are_the_interpreters(backend, name, tmp_path):
    prog, c = compiled(backend, name)
    x = prog.input.sample(np.random.default_rng(1), 3, 30)
    tr = trace(c, x)
    ref = interpret(c.graph, x, trace=True)
    assert set(tr.values) >= {p.node for p in c.emitted.placements}  # every materialized value is decoded
    for node, value in tr.values.items():
        np.testing.assert_allclose(value, ref.values[node], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(tr.output, c.module(torch.tensor(x)).detach().numpy())
    # the layers' activations are what hooks on the module's layers see
    prefix = get_backend(backend).prefix
    assert list(tr.layers) == ["input"] + c.emitted.stage_layers(prefix, len(c.stack.stages))
    widths = [tr.layers[name].shape[-1] for name in list(tr.layers)[1:]]
    assert widths == c.emitted.config.get("hiddens", [st.out.width for st in c.stack.stages])
    # a checkpoint traces the same
    save_checkpoint(c, tmp_path / "ck")
    tr2 = trace(tmp_path / "ck", x)
    for node, value in tr.values.items():
        np.testing.assert_array_equal(value, tr2.values[node])


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_every_unit_is_labelled_with_what_it_holds(backend):
    """Programs without state inits: every unit of every layer holds some value's component (the rnn/gru/lstm
    constant unit exists only for a state with a nonzero init)."""
    prog, c = compiled(backend, "parity")
    x = prog.input.sample(np.random.default_rng(2), 2, 12)
    tr = trace(c, x)
    for layer, units in tr.units.items():
        bare = [j for j, u in enumerate(units) if not u]
        if backend in ("mamba", "hawk") and bare:  # a residual stream: the coordinates no value uses now, and
            acts = tr.layers[layer][..., bare]  # mamba's constant 1 (the last)
            const = backend == "mamba"
            assert not const or (bare[-1:] == [len(units) - 1] and np.all(acts[..., -1] == 1))
            assert np.all(acts[..., :len(bare) - const] == 0)
            continue
        assert not bare, f"{layer}: unlabelled units {bare}"
        for j, labels in enumerate(units):
            for u in labels:
                assert u.layer == layer and u.unit == j and u.coefficient != 0
    named = {u.variable for us in tr.units.values() for ls in us for u in ls if u.variable}
    assert "x" in named and len(named) > 1


def test_trace_cli(tmp_path, capsys):
    _, c = compiled("gru", "more_ones")
    save_checkpoint(c, tmp_path / "ck")
    rc = main(["trace", str(tmp_path / "ck"), "--input", "1 0 0 1 1", "--units", "-o", str(tmp_path / "a.safetensors")])
    out = capsys.readouterr().out
    assert rc == 0 and "balance=-1" in out and "grus.1:" in out
    from safetensors.numpy import load_file

    acts = load_file(str(tmp_path / "a.safetensors"))
    assert set(acts) == {"input", "grus.0", "grus.1"} and (tmp_path / "a.units.json").exists()
    assert main(["trace", str(tmp_path / "nowhere"), "--input", "1"]) == 1
    assert main(["trace", str(tmp_path / "ck"), "--input", "1,0"]) == 1  # wrong number of components
