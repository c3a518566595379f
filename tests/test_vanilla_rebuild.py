"""A checkpoint of a torch-RNN-family backend (rnn, gru, lstm: layers that are torch.nn.RNNBase modules) is usable
without lsrl: the model rebuilt from nothing but `safetensors.torch.load_file`, `json`, vanilla
torch.nn.RNN/GRU/LSTM layers and torch.nn.Linear heads, sized from config.json's module_config, computes what
`lsrl.load` and the interpreter compute."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS, get_backend
from safetensors.torch import load_file

import lsrl
from lsrl.compiling import CompileOptions, compile_program

ROOT = Path(__file__).parent.parent
PROGRAMS = ["more_ones.lsrl", "dyck1.lsrl"]
MAX_LEN = 256

# the vanilla torch layer of each backend whose layers are torch RNN modules (backend name -> constructor)
VANILLA = {
    "rnn": lambda n_in, n_h, dtype: torch.nn.RNN(n_in, n_h, nonlinearity="relu", batch_first=True, dtype=dtype),
    "gru": lambda n_in, n_h, dtype: torch.nn.GRU(n_in, n_h, batch_first=True, dtype=dtype),
    "lstm": lambda n_in, n_h, dtype: torch.nn.LSTM(n_in, n_h, batch_first=True, dtype=dtype),
}


class Vanilla(torch.nn.Module):
    """The checkpoint's model from plain torch.nn parts: layers in sequence, then linear read-out/probe heads."""

    def __init__(self, directory: Path):
        super().__init__()
        cfg = json.loads((directory / "config.json").read_text())
        tensors = load_file(str(directory / "model.safetensors"))
        mc, dtype = cfg["module_config"], getattr(torch, cfg["dtype"])
        # the layers' parameter prefix, from the tensor names themselves ("{prefix}.{i}.weight_ih_l0")
        (self.prefix,) = {k.split(".")[0] for k in tensors if k.endswith(".weight_ih_l0")}
        make = VANILLA[cfg["backend"]]
        used = set()

        def take(module: torch.nn.Module, name: str) -> torch.nn.Module:
            state = {k: tensors[f"{name}.{k}"] for k in module.state_dict()}
            module.load_state_dict(state, strict=True)
            used.update(f"{name}.{k}" for k in state)
            return module

        self.layers = torch.nn.ModuleList(
            take(make(n_in, n_h, dtype), f"{self.prefix}.{i}")
            for i, (n_in, n_h) in enumerate(zip(mc["inputs"], mc["hiddens"], strict=True))
        )
        self.readout = take(torch.nn.Linear(mc["readout_in"], mc["output_dim"], dtype=dtype), "readout")
        self.probe_names = list(mc["probes"])  # in head order
        self.probe_heads = torch.nn.ModuleList(
            take(torch.nn.Linear(mc["readout_in"], d, dtype=dtype), f"probe_heads.{k}")
            for k, d in enumerate(mc["probes"].values())
        )
        assert used == set(tensors), f"tensors left unused: {sorted(set(tensors) - used)}"

    def forward(self, x: torch.Tensor):
        h = x
        for layer in self.layers:
            h = layer(h)[0]  # (output sequence, final state)
        return self.readout(h), {n: head(h) for n, head in zip(self.probe_names, self.probe_heads, strict=True)}


def _inputs(prog) -> np.ndarray:
    rng = np.random.default_rng(0)
    runs = prog.input.sample(rng, 6, MAX_LEN)
    lo, hi = (float(v) for v in prog.input.domain.bounds)
    edges = np.stack([np.full((MAX_LEN, 1), lo), np.full((MAX_LEN, 1), hi)])  # the longest runs of each token
    return np.concatenate([runs, edges])


@pytest.mark.parametrize("program", PROGRAMS)
@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_vanilla_torch_rebuild_matches_lsrl_and_the_interpreter(tmp_path, backend, program):
    prog = lsrl.load_program(str(ROOT / "programs" / program))
    x = _inputs(prog)
    want = lsrl.interpret(prog.graph, x)
    for dtype in ("float64", "float32"):
        c = compile_program(prog, CompileOptions(backend=backend, dtype=dtype, max_len=MAX_LEN))
        if not isinstance(getattr(c.module, get_backend(backend).prefix)[0], torch.nn.RNNBase):
            pytest.skip(f"the {backend} backend's layers are not torch RNN modules")
        directory = lsrl.save_checkpoint(c, tmp_path / dtype)
        vanilla = Vanilla(directory).eval()
        assert vanilla.prefix == get_backend(backend).prefix
        loaded = lsrl.load(directory)
        xt = torch.tensor(x, dtype=getattr(torch, dtype))
        with torch.no_grad():
            y, probes = vanilla(xt)
            y_lsrl, probes_lsrl = loaded(xt, probes=True)
        assert y.dtype == xt.dtype and probes.keys() == probes_lsrl.keys() == want.probes.keys()
        pairs = [(y, y_lsrl, want.output)] + [(probes[k], probes_lsrl[k], want.probes[k]) for k in probes]
        for got, ours, ref in pairs:
            got, ours = got.double().numpy(), ours.double().numpy()
            if dtype == "float64":
                np.testing.assert_allclose(got, ours, rtol=0, atol=1e-9)
                np.testing.assert_allclose(got, ref, rtol=0, atol=1e-9)
            else:  # integer-valued programs: every token exactly right
                np.testing.assert_array_equal(np.round(got), np.round(ref))
                np.testing.assert_array_equal(np.round(got), np.round(ours))
