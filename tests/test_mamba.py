"""The mamba backend on the real implementation: our mixers are transformers' MambaMixer weight for weight,
the Triton scan runs a compiled model, and exported directories load into MambaForCausalLM and answer
prompts with no lsrl code in the loop. (Every registry-parametrised test also covers mamba.)"""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

os.environ.setdefault("TRITON_INTERPRET", "1")  # as tests/test_scan.py: Triton kernels run on the CPU

from lsrl import LsrlError, interpret, load_program  # noqa: E402
from lsrl.compile import CompileOptions, compile_program  # noqa: E402
from lsrl.runtime.checkpoint import save_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from test_tok2tok import build_input  # noqa: E402

HAS_HF = importlib.util.find_spec("transformers") is not None
needs_hf = pytest.mark.skipif(not HAS_HF, reason="needs transformers (pip install lsrl[hf])")


def _compiled(name: str, params=None, max_len: int = 128, dtype: str = "float32"):
    prog = load_program(str(ROOT / "programs" / f"{name}.lsrl"), params)
    return prog, compile_program(prog, CompileOptions("mamba", max_len, dtype))


def _stream(module, x: torch.Tensor) -> torch.Tensor:
    r = x.new_zeros(*x.shape[:-1], module.hidden)
    r[..., :module.input_dim] = x
    r[..., -1] = 1
    return r


@needs_hf
def test_mixers_are_transformers_mamba_mixers_bit_for_bit():
    from transformers import MambaConfig
    from transformers.models.mamba.modeling_mamba import MambaMixer

    prog, c = _compiled("tok2tok", {"T": 3})
    m = c.module
    r = _stream(m, torch.tensor(prog.input.sample(np.random.default_rng(0), 4, 40), dtype=torch.float32))
    with torch.no_grad():
        for i, block in enumerate(m.layers):
            layer = block.mixer
            cfg = MambaConfig(hidden_size=m.hidden, state_size=layer.d_state, expand=1,
                              intermediate_size=layer.D.shape[0], conv_kernel=4, time_step_rank=1, use_bias=False,
                              use_conv_bias=True)
            hf = MambaMixer(cfg, layer_idx=i).float()
            hf.load_state_dict(layer.state_dict())  # strict: the same names and shapes
            ours = layer(r)
            assert torch.equal(ours, hf(r))
            nxt = block(r)  # the residual block adds the mixer's output to the stream
            assert torch.equal(nxt, r + ours)
            r = nxt


@pytest.mark.skipif(importlib.util.find_spec("triton") is None or os.environ.get("TRITON_INTERPRET") != "1",
                    reason="needs triton and TRITON_INTERPRET=1")
def test_triton_scan_runs_a_compiled_program():
    prog, c = _compiled("dyck1", max_len=64)
    x = torch.tensor(prog.input.sample(np.random.default_rng(1), 3, 40), dtype=torch.float32)
    with torch.no_grad():
        c.module.set_scan_impl("torch")
        ref = c.module(x)
        c.module.set_scan_impl("triton")
        got = c.module(x)
    assert torch.equal(got, ref)
    want = interpret(prog.reference_graph, x.double().numpy()).output
    assert np.array_equal(got.double().numpy(), want)


def _export(tmp_path: Path, name: str, params=None, max_len: int = 128):
    from transformers import MambaForCausalLM

    from lsrl.runtime.hf_export import export_hf

    prog, c = _compiled(name, params, max_len)
    ck = save_checkpoint(c, tmp_path / "ck")
    out = export_hf(ck, tmp_path / "hf")
    return prog, MambaForCausalLM.from_pretrained(out).eval()


@needs_hf
@pytest.mark.parametrize("T", [2, 3, 4])
def test_exported_tok2tok_answers_key_value_prompts(tmp_path, T):
    """Token ids are the token values (the domain is 0..V-1); the last T logits' argmax is the value."""
    _, model = _export(tmp_path, "tok2tok", {"T": T})
    rng = np.random.default_rng(T)
    for _ in range(30):
        q = tuple(rng.integers(0, 10, T).tolist())
        keys = list(dict.fromkeys([q] + [tuple(rng.integers(0, 10, T).tolist()) for _ in range(rng.integers(0, 7))]))
        rng.shuffle(keys)
        vals = [tuple(rng.integers(0, 10, T).tolist()) for _ in keys]
        seq = build_input(q, list(zip(keys, vals, strict=True)))
        with torch.no_grad():
            logits = model(input_ids=torch.tensor([seq])).logits
        assert tuple(logits[0, -T:].argmax(-1).tolist()) == vals[keys.index(q)]


@needs_hf
@pytest.mark.parametrize("name", ["more_ones", "parity"])
def test_exported_binary_programs_answer_at_every_step(tmp_path, name):
    prog, model = _export(tmp_path, name)
    x = np.random.default_rng(7).integers(0, 2, (16, 128))
    want = interpret(prog.reference_graph, x[..., None].astype(float)).output[..., 0]
    with torch.no_grad():
        got = model(input_ids=torch.tensor(x)).logits.argmax(-1).numpy()
    assert np.array_equal(got, want)  # token id k is the value k (domain {0, 1})


@needs_hf
def test_export_refuses_other_backends_and_dtypes(tmp_path):
    from lsrl.runtime.hf_export import export_hf

    prog = load_program(str(ROOT / "programs" / "counter.lsrl"))
    for opts, what in [(CompileOptions("rnn", 64, "float32"), "mamba checkpoints"),
                       (CompileOptions("mamba", 64, "float64"), "float32 checkpoints")]:
        ck = save_checkpoint(compile_program(prog, opts), tmp_path / opts.backend / opts.dtype)
        with pytest.raises(LsrlError) as exc:
            export_hf(ck, tmp_path / "out")
        assert exc.value.diagnostics[0].code == "E0812" and what in exc.value.diagnostics[0].message


def test_every_program_is_exact_in_float32_where_it_is_integer(tmp_path):
    """Integer programs compile to integer arithmetic: the promise is exact (bound 0) up to max_len."""
    for name in ["counter", "dyck1", "more_ones", "parity", "running_max", "mod_counter", "tok2tok"]:
        _, c = _compiled(name, max_len=4096)
        p = c.promise()
        assert p.outputs["output"].abs_bound == 0, name
