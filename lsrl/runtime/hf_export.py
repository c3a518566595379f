"""Export a mamba checkpoint as a directory that `transformers.MambaForCausalLM.from_pretrained` loads as it is.

The lsrl module is already a residual stack of MambaMixers over a stream [values.., 1]; the HF model adds an
embedding, an RMSNorm before every mixer and before the head, and an untied lm_head:

- stream: width H = the smallest power of 4 >= the lsrl stream's width; value coordinates keep their
  places, the constant moves to coordinate H - 1 and holds LC = 2^40 instead of 1 (in_proj and lm_head read
  it with weights divided by LC, exact powers of two);
- RMSNorm: mean(x^2) = LC^2 / H exactly (a power of two, while the other squares sum below half an ulp of
  LC^2 = 2^80, i.e. below 2^56), so rsqrt gives sqrt(H) / LC exactly and the norm weight LC / sqrt(H)
  makes every norm the identity;
- embedding: token id k is the k-th value of the input's finite domain in increasing order: [v_k, 0.., LC];
  a vector input is given as `inputs_embeds` = [x, 0.., LC] (the config's vocabulary is then unused);
- lm_head: for a scalar output over token inputs, logit_k = 2 v_k y - v_k^2 = y^2 - (y - v_k)^2, whose argmax
  is the token nearest the program's output y; otherwise the logits are the program's outputs themselves.

Mixers are padded to one width and one state size (transformers' config has one intermediate_size and
one state_size) with channels that do nothing (x = 0, dt = 0, out_proj 0) and slots with B = C = 0. The
model computes in float32 (HF's norms and scans do), so only float32 checkpoints are exported.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import torch

from lsrl.diagnostics import error
from lsrl.runtime.checkpoint import MANIFEST_FILE, _safetensors_bytes, _write, load, load_config

LC = 2.0**40
HF_WEIGHTS, HF_CONFIG, LSRL_INFO = "model.safetensors", "config.json", "lsrl_hf.json"


def _power_of_4_at_least(n: int) -> int:
    h = 1
    while h < n:
        h *= 4
    return h


def token_values(cfg: dict) -> list[float] | None:
    """The input's token values in increasing order (token id k is the k-th), or None for vector inputs."""
    inp = cfg["program"]["input"]
    dom = inp.get("domain")
    if inp["dim"] != 1 or not dom or dom["kind"] != "set":
        return None
    from fractions import Fraction

    return [float(Fraction(v)) for v in sorted(dom["values"], key=lambda v: Fraction(v))]


def hf_state(module, cfg: dict) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(state_dict, transformers config, lsrl info) of the HF model for a loaded mamba module."""
    hidden, n_in = module.hidden, module.input_dim
    H = _power_of_4_at_least(hidden)
    mixers = [block.mixer for block in module.layers]
    inner = max([m.D.shape[0] for m in mixers], default=1)
    N = max([m.d_state for m in mixers], default=1)
    const = H - 1
    f32 = {"dtype": torch.float32}
    norm = torch.full((H,), LC / math.sqrt(H), **f32)
    sd: dict[str, torch.Tensor] = {}
    cols = list(range(hidden - 1)) + [const]  # lsrl stream coordinate -> HF coordinate
    for i, layer in enumerate(mixers):
        n = layer.D.shape[0]
        p = f"backbone.layers.{i}."
        sd[p + "norm.weight"] = norm.clone()
        w_in = torch.zeros(2 * inner, H, **f32)
        src = layer.in_proj.weight.detach().float()
        w_in[:n, cols], w_in[inner:inner + n, cols] = src[:n], src[n:]
        w_in[:, const] /= LC
        conv_w, conv_b = torch.zeros(inner, 1, 4, **f32), torch.zeros(inner, **f32)
        conv_w[:n], conv_b[:n] = layer.conv1d.weight.detach(), layer.conv1d.bias.detach()
        x_proj = torch.zeros(1 + 2 * N, inner, **f32)  # rows [dt | B | C]: a layer's slots first, then unused
        k, src_x = layer.d_state, layer.x_proj.weight.detach()
        x_proj[0, :n], x_proj[1:1 + k, :n], x_proj[1 + N:1 + N + k, :n] = src_x[0], src_x[1:1 + k], src_x[1 + k:]
        dt_w = torch.zeros(inner, 1, **f32)
        dt_w[:n] = layer.dt_proj.weight.detach()
        dt_b = torch.full((inner,), -1000.0, **f32)
        dt_b[:n] = layer.dt_proj.bias.detach()
        a_log, d = torch.zeros(inner, N, **f32), torch.zeros(inner, **f32)
        a_log[:n, :k], d[:n] = layer.A_log.detach(), layer.D.detach()
        out = torch.zeros(H, inner, **f32)
        out[cols, :n] = layer.out_proj.weight.detach().float()
        sd.update({p + "mixer.in_proj.weight": w_in, p + "mixer.conv1d.weight": conv_w, p + "mixer.conv1d.bias": conv_b,
                   p + "mixer.x_proj.weight": x_proj, p + "mixer.dt_proj.weight": dt_w, p + "mixer.dt_proj.bias": dt_b,
                   p + "mixer.A_log": a_log, p + "mixer.D": d, p + "mixer.out_proj.weight": out})
    sd["backbone.norm_f.weight"] = norm.clone()
    W = torch.zeros(module.readout.weight.shape[0], H, **f32)
    W[:, cols] = module.readout.weight.detach().float()
    b = module.readout.bias.detach().float()
    tokens = token_values(cfg)
    if tokens is not None and W.shape[0] == 1:
        v = torch.tensor(tokens, **f32)
        head = 2 * v[:, None] * W  # logit_k = 2 v_k y - v_k^2
        head[:, const] += (2 * v * b[0] - v * v) / LC
        emb = torch.zeros(len(tokens), H, **f32)
        emb[:, 0], emb[:, const] = v, LC
    else:
        head = W.clone()
        head[:, const] += b / LC
        emb = torch.zeros(max(len(tokens or []), 1), H, **f32)
        if tokens is not None:
            emb[:, 0], emb[:, const] = torch.tensor(tokens, **f32), LC
    sd["backbone.embeddings.weight"], sd["lm_head.weight"] = emb, head
    config = {"architectures": ["MambaForCausalLM"], "model_type": "mamba", "vocab_size": emb.shape[0],
              "hidden_size": H, "state_size": N, "num_hidden_layers": len(mixers), "intermediate_size": inner,
              "expand": 1, "conv_kernel": 4, "use_bias": False, "use_conv_bias": True, "hidden_act": "silu",
              "time_step_rank": 1, "residual_in_fp32": True, "layer_norm_epsilon": 1e-5,
              "tie_word_embeddings": False, "use_associative_scan": False, "use_cache": False,
              "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0, "dtype": "float32"}
    info = {"tokens": tokens, "logits": "nearest token" if tokens is not None and W.shape[0] == 1 else "outputs",
            "hidden_size": H, "constant_coordinate": const, "constant": LC, "input_dim": n_in,
            "inputs_embeds": f"[x (coordinates 0..{n_in - 1}), zeros, {LC:.0f} at coordinate {const}]"}
    return sd, config, info


def export_hf(checkpoint, directory) -> Path:
    """Write the HF directory for a mamba checkpoint (the lsrl manifest and lsrl_hf.json beside)."""
    cfg = load_config(checkpoint)
    if cfg["backend"] != "mamba":
        raise error("E0812", f"`--format hf` exports mamba checkpoints; {checkpoint} is a {cfg['backend']} one",
                    None, "compile with `--backend mamba --dtype float32`")
    if cfg["dtype"] != "float32":
        raise error("E0812", f"`--format hf` exports float32 checkpoints (transformers' Mamba computes its norms "
                    f"and scans in float32); {checkpoint} is {cfg['dtype']}", None, "compile with `--dtype float32`")
    sd, config, info = hf_state(load(checkpoint), cfg)
    out = Path(directory)
    try:
        out.mkdir(parents=True, exist_ok=True)
        _write(out / HF_WEIGHTS, _safetensors_bytes({k: v.contiguous() for k, v in sd.items()}, {"format": "pt"}))
        _write(out / HF_CONFIG, (json.dumps(config, indent=2, sort_keys=True) + "\n").encode())
        _write(out / LSRL_INFO, (json.dumps(info, indent=2, sort_keys=True) + "\n").encode())
        _write(out / MANIFEST_FILE, (Path(checkpoint) / MANIFEST_FILE).read_bytes())
    except OSError as exc:
        raise error("E0811", f"cannot write the export to {out}: {exc.strerror or exc}", None,
                    "choose a writable directory path") from None
    return out
