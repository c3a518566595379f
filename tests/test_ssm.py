"""The SSM backends (mamba, hawk) on the real implementations: our blocks are transformers' MambaMixer and
RecurrentGemma blocks weight for weight, the Triton scans run compiled models, and exported directories load
into MambaForCausalLM / RecurrentGemmaForCausalLM and answer prompts with no lsrl code in the loop. (Every
registry-parametrised test also covers both.)"""

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
from lsrl.compiling import CompileOptions, compile_program  # noqa: E402
from lsrl.runtime.checkpoint import save_checkpoint  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(Path(__file__).parent))
from test_tok2tok import build_input  # noqa: E402

HAS_HF = importlib.util.find_spec("transformers") is not None
needs_hf = pytest.mark.skipif(not HAS_HF, reason="needs transformers (pip install lsrl[hf])")
needs_triton = pytest.mark.skipif(importlib.util.find_spec("triton") is None
                                  or os.environ.get("TRITON_INTERPRET") != "1",
                                  reason="needs triton and TRITON_INTERPRET=1")
SSM = ["mamba", "hawk"]


def _compiled(name: str, params=None, max_len: int = 128, dtype: str = "float32", backend: str = "mamba"):
    prog = load_program(str(ROOT / "programs" / f"{name}.lsrl"), params)
    return prog, compile_program(prog, CompileOptions(backend, max_len, dtype))


def _stream(module, x: torch.Tensor, const: bool = True) -> torch.Tensor:
    r = x.new_zeros(*x.shape[:-1], module.hidden)
    r[..., :module.input_dim] = x
    if const:
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


@needs_hf
def test_hawk_blocks_are_transformers_recurrent_gemma_blocks_bit_for_bit():
    """Each temporal block loads strictly into RecurrentGemmaRecurrentBlock and each MLP into RecurrentGemmaMlp,
    and both give our outputs bit for bit (position ids from 0: the RG-LRU resets at the first step)."""
    from transformers import RecurrentGemmaConfig
    from transformers.models.recurrent_gemma.modeling_recurrent_gemma import (
        RecurrentGemmaMlp,
        RecurrentGemmaRecurrentBlock,
    )

    prog, c = _compiled("tok2tok", {"T": 3}, backend="hawk")
    m = c.module
    r = _stream(m, torch.tensor(prog.input.sample(np.random.default_rng(0), 4, 40), dtype=torch.float32), False)
    pos = torch.arange(r.shape[1])[None].expand(r.shape[0], -1)
    with torch.no_grad():
        for i, block in enumerate(m.layers):
            t, mlp = block.temporal_block, block.mlp_block
            cfg = RecurrentGemmaConfig(hidden_size=m.hidden, lru_width=t.linear_x.out_features,
                                       intermediate_size=2 * mlp.up_proj.out_features, num_attention_heads=1,
                                       num_key_value_heads=1, block_types=["recurrent"], num_hidden_layers=1)
            hf_t, hf_m = RecurrentGemmaRecurrentBlock(cfg, i).float(), RecurrentGemmaMlp(cfg).float()
            hf_t.load_state_dict(t.state_dict())  # strict: the same names and shapes
            hf_m.load_state_dict(mlp.state_dict())
            ours = t(r)
            assert torch.equal(ours, hf_t(r, pos, None, use_cache=False)[0])
            mid = r + ours
            assert torch.equal(block.residual(r), mid)  # the hook point between the halves
            assert torch.equal(mlp(mid), hf_m(mid))
            nxt = block(r)
            assert torch.equal(nxt, mid + mlp(mid))
            r = nxt


@needs_triton
@pytest.mark.parametrize("backend", SSM)
def test_triton_scan_runs_a_compiled_program(backend):
    prog, c = _compiled("dyck1", max_len=64, backend=backend)
    x = torch.tensor(prog.input.sample(np.random.default_rng(1), 3, 40), dtype=torch.float32)
    with torch.no_grad():
        c.module.set_scan_impl("torch")
        ref = c.module(x)
        c.module.set_scan_impl("triton")
        got = c.module(x)
    assert torch.equal(got, ref)
    want = interpret(prog.reference_graph, x.double().numpy()).output
    assert np.array_equal(got.double().numpy(), want)


def _export(tmp_path: Path, backend: str, name: str, params=None, max_len: int = 128):
    import transformers

    from lsrl.runtime.hf_export import export_hf, model_class

    prog, c = _compiled(name, params, max_len, backend=backend)
    ck = save_checkpoint(c, tmp_path / "ck")
    out = export_hf(ck, tmp_path / "hf")
    return prog, getattr(transformers, model_class(ck)).from_pretrained(out).eval()


@needs_hf
@pytest.mark.parametrize("backend", SSM)
@pytest.mark.parametrize("T", [2, 3, 4])
def test_exported_tok2tok_answers_key_value_prompts(tmp_path, backend, T):
    """Token ids are the token values (the domain is 0..V-1); the last T logits' argmax is the value."""
    _, model = _export(tmp_path, backend, "tok2tok", {"T": T})
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
@pytest.mark.parametrize("backend", SSM)
@pytest.mark.parametrize("name", ["more_ones", "parity"])
def test_exported_binary_programs_answer_at_every_step(tmp_path, backend, name):
    prog, model = _export(tmp_path, backend, name)
    x = np.random.default_rng(7).integers(0, 2, (16, 128))
    want = interpret(prog.reference_graph, x[..., None].astype(float)).output[..., 0]
    with torch.no_grad():
        got = model(input_ids=torch.tensor(x)).logits.argmax(-1).numpy()
    assert np.array_equal(got, want)  # token id k is the value k (domain {0, 1})


@needs_hf
def test_export_of_a_vector_program_reads_inputs_embeds(tmp_path):
    """A vector input enters as inputs_embeds as lsrl_hf.json describes; the logits are the outputs."""
    import json

    prog, model = _export(tmp_path, "hawk", "window_sum")
    info = json.loads((tmp_path / "hf" / "lsrl_hf.json").read_text())
    x = prog.input.sample(np.random.default_rng(3), 2, 50)
    emb = torch.zeros(*x.shape[:2], info["hidden_size"])
    emb[..., info["input_coordinates"]] = torch.tensor(x, dtype=torch.float32)
    emb[..., info["constant_coordinate"]] = info["constant"]
    emb /= info["hidden_size"] ** 0.5  # RecurrentGemma scales embeddings by sqrt(hidden_size)
    with torch.no_grad():
        got = model(inputs_embeds=emb).logits.double().numpy()
    want = interpret(prog.reference_graph, x).output
    assert info["logits"] == "outputs" and np.abs(got - want).max() < 1e-4


@needs_hf
def test_export_refuses_other_backends_and_dtypes(tmp_path):
    from lsrl.runtime.hf_export import export_hf

    prog = load_program(str(ROOT / "programs" / "counter.lsrl"))
    for opts, what in [(CompileOptions("rnn", 64, "float32"), "mamba and hawk checkpoints"),
                       (CompileOptions("mamba", 64, "float64"), "float32 checkpoints"),
                       (CompileOptions("hawk", 64, "float64"), "float32 checkpoints")]:
        ck = save_checkpoint(compile_program(prog, opts), tmp_path / opts.backend / opts.dtype)
        with pytest.raises(LsrlError) as exc:
            export_hf(ck, tmp_path / "out")
        assert exc.value.diagnostics[0].code == "E0812" and what in exc.value.diagnostics[0].message


@pytest.mark.parametrize("backend", SSM)
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_program_is_exact_where_it_is_integer(backend, dtype):
    """Integer programs compile to integer arithmetic: the promise is exact (bound 0) up to max_len, and the
    model gives the interpreter's outputs bit for bit on inputs of that length."""
    for name in ["counter", "dyck1", "more_ones", "parity", "running_max", "mod_counter", "tok2tok"]:
        prog, c = _compiled(name, max_len=4096, dtype=dtype, backend=backend)
        assert c.promise().outputs["output"].abs_bound == 0, name
    x = prog.input.sample(np.random.default_rng(5), 2, 4096)  # tok2tok at its max_len
    with torch.no_grad():
        got = c.module(torch.tensor(x)).double().numpy()
    assert np.array_equal(got, interpret(prog.reference_graph, x).output)


def test_hawk_integrators_are_checked_on_the_device_they_run_on():
    """An integrator is exact because exp(log a) rounds to 1 while sqrt(1 - a^2) is 2^-12 exactly; the module
    checks this before running on a device, and refuses where the rounding differs (here: simulated by a
    recurrent_param outside the window)."""
    from lsrl.backends import get_backend

    assert get_backend("hawk").check_platform(torch.float32) == ()
    prog, c = _compiled("counter", backend="hawk")
    m = c.module
    (layer, chans), = [(i, ch) for i, ch in enumerate(m.integrators) if ch]
    with torch.no_grad():
        m.layers[layer].temporal_block.rg_lru.recurrent_param[chans[0]] -= 3  # log a 20x smaller: a^2 == 1 too
        m._checked.clear()
        with pytest.raises(RuntimeError, match="exp\\(log a\\) does not round to 1"):
            m(torch.zeros(1, 3, 1))
