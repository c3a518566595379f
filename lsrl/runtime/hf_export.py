"""Export a mamba or hawk checkpoint as a directory that transformers' `MambaForCausalLM` or
`RecurrentGemmaForCausalLM` `.from_pretrained` loads as it is.

The lsrl module is already a residual stack of the real blocks (MambaMixers; RecurrentGemma temporal and
MLP blocks); the HF model adds an embedding, an RMSNorm before every block and before the head, and a head:

- stream: width H = a power of 4 holding the lsrl stream's coordinates in their places and, at H - 1, the
  constant LC = 2^40 (mamba's constant 1 moves there; weights reading it are divided by LC, powers of two);
- RMSNorm: mean(x^2) = LC^2 / H exactly (a power of two, while the other squares sum below half an ulp of
  LC^2 = 2^80, i.e. below 2^56), so rsqrt gives sqrt(H) / LC exactly and the norm weight LC / sqrt(H)
  (RecurrentGemma's (1 + weight) rounds to it) makes every norm the identity;
- embedding: token id k is the k-th value of the input's finite domain in increasing order: [v_k, 0.., LC]
  (RecurrentGemma multiplies embeddings by sqrt(H), a power of two: its rows are divided by it); a vector
  input is given as `inputs_embeds` (lsrl_hf.json says how);
- head: for a scalar output over token inputs, logit_k = 2 v_k y - v_k^2 = y^2 - (y - v_k)^2, whose argmax
  is the token nearest the program's output y; otherwise the logits are the program's outputs themselves.
  RecurrentGemma's soft cap tanh(logits / cap) cap is the identity with cap = 2^60 (tanh(z) == z for
  |z| < 2^-12, and the division and product by a power of two are exact).

Blocks are padded to one width (the configs have one intermediate_size, lru_width and state_size) with
channels that do nothing. The HF models compute in float32 (their norms and scans do), so only float32
checkpoints are exported.
"""

from __future__ import annotations

import json
import math
from fractions import Fraction
from pathlib import Path

import torch

from lsrl.diagnostics import error
from lsrl.runtime.checkpoint import MANIFEST_FILE, _safetensors_bytes, _write, load, load_config

LC = 2.0**40
SOFT_CAP = 2.0**60
HF_WEIGHTS, HF_CONFIG, LSRL_INFO = "model.safetensors", "config.json", "lsrl_hf.json"
F32 = {"dtype": torch.float32}


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
    return [float(Fraction(v)) for v in sorted(dom["values"], key=lambda v: Fraction(v))]


class _Stream:
    """Where the lsrl stream's physical coordinates go in the HF stream of width H (the constant at H - 1)."""

    def __init__(self, module, const: int | None):
        """`const`: the lsrl coordinate holding the constant 1 (None: the module has none)."""
        hidden = module.hidden
        clash = const is not None and const != hidden - 1  # keep H - 1 free for the constant
        self.H = _power_of_4_at_least(hidden + (const is None or clash))
        self.const = self.H - 1
        self.cols = [self.const if j == const else j for j in range(hidden)]
        self.inputs = [self.cols[j] for j in module.stream[:module.input_dim]]

    def read(self, w: torch.Tensor, bias: torch.Tensor | None = None) -> torch.Tensor:
        """A weight over the lsrl stream (out, hidden) as one over the HF stream (plus a bias through LC)."""
        out = torch.zeros(w.shape[0], self.H, **F32)
        out[:, self.cols] = w.detach().float()
        out[:, self.const] /= LC
        if bias is not None:
            out[:, self.const] += bias.detach().float() / LC
        return out

    def write(self, w: torch.Tensor) -> torch.Tensor:
        """A weight writing the lsrl stream (hidden, in) as one writing the HF stream."""
        out = torch.zeros(self.H, w.shape[1], **F32)
        out[self.cols] = w.detach().float()
        return out

    def norm(self) -> torch.Tensor:
        return torch.full((self.H,), LC / math.sqrt(self.H), **F32)


def _head(module, s: _Stream, tokens, emb_scale: float) -> tuple[torch.Tensor, torch.Tensor, str]:
    """(embedding, lm_head, what the logits are)."""
    W, b = module.readout.weight, module.readout.bias.detach().float()
    if tokens is not None and W.shape[0] == 1:
        v = torch.tensor(tokens, **F32)
        head = s.read(2 * v[:, None] * W.detach().float(), 2 * v * b[0] - v * v)  # logit_k = 2 v_k y - v_k^2
        what = "nearest token"
    else:
        head, what = s.read(W, b), "outputs"
    emb = torch.zeros(max(len(tokens or []), 1), s.H, **F32)
    if tokens is not None:
        emb[:, s.inputs[0]] = torch.tensor(tokens, **F32)
    emb[:, s.const] = LC
    return emb / emb_scale, head, what


def _mamba(module) -> tuple[dict, dict, _Stream, float]:
    s = _Stream(module, module.stream[-1])
    mixers = [block.mixer for block in module.layers]
    inner = max([m.D.shape[0] for m in mixers], default=1)
    N = max([m.d_state for m in mixers], default=1)
    sd: dict[str, torch.Tensor] = {}
    for i, layer in enumerate(mixers):
        n, k = layer.D.shape[0], layer.d_state
        p = f"backbone.layers.{i}."
        w_in = torch.zeros(2 * inner, s.H, **F32)
        src = s.read(layer.in_proj.weight)
        w_in[:n], w_in[inner:inner + n] = src[:n], src[n:]
        conv_w, conv_b = torch.zeros(inner, 1, 4, **F32), torch.zeros(inner, **F32)
        conv_w[:n], conv_b[:n] = layer.conv1d.weight.detach(), layer.conv1d.bias.detach()
        x_proj = torch.zeros(1 + 2 * N, inner, **F32)  # rows [dt | B | C]: a layer's slots first, then unused
        src_x = layer.x_proj.weight.detach()
        x_proj[0, :n], x_proj[1:1 + k, :n], x_proj[1 + N:1 + N + k, :n] = src_x[0], src_x[1:1 + k], src_x[1 + k:]
        dt_w = torch.zeros(inner, 1, **F32)
        dt_w[:n] = layer.dt_proj.weight.detach()
        dt_b = torch.full((inner,), -1000.0, **F32)
        dt_b[:n] = layer.dt_proj.bias.detach()
        a_log, d = torch.zeros(inner, N, **F32), torch.zeros(inner, **F32)
        a_log[:n, :k], d[:n] = layer.A_log.detach(), layer.D.detach()
        out = torch.zeros(s.H, inner, **F32)
        out[:, :n] = s.write(layer.out_proj.weight)
        sd.update({p + "norm.weight": s.norm(), p + "mixer.in_proj.weight": w_in, p + "mixer.conv1d.weight": conv_w,
                   p + "mixer.conv1d.bias": conv_b, p + "mixer.x_proj.weight": x_proj,
                   p + "mixer.dt_proj.weight": dt_w, p + "mixer.dt_proj.bias": dt_b, p + "mixer.A_log": a_log,
                   p + "mixer.D": d, p + "mixer.out_proj.weight": out})
    sd["backbone.norm_f.weight"] = s.norm()
    config = {"architectures": ["MambaForCausalLM"], "model_type": "mamba", "hidden_size": s.H, "state_size": N,
              "num_hidden_layers": len(mixers), "intermediate_size": inner, "expand": 1, "conv_kernel": 4,
              "use_bias": False, "use_conv_bias": True, "hidden_act": "silu", "time_step_rank": 1,
              "residual_in_fp32": True, "layer_norm_epsilon": 1e-5, "use_associative_scan": False}
    return sd, config, s, 1.0


def _padded(t: torch.Tensor, shape: tuple, fill: float = 0.0) -> torch.Tensor:
    out = torch.full(shape, fill, **F32)
    out[tuple(slice(0, n) for n in t.shape)] = t.detach().float()
    return out


def _hawk(module) -> tuple[dict, dict, _Stream, float]:
    s = _Stream(module, None)
    W = max([b.temporal_block.linear_x.out_features for b in module.layers], default=1)
    E = max([b.mlp_block.up_proj.out_features for b in module.layers], default=1)
    norm = s.norm() - 1  # RecurrentGemma's RMSNorm multiplies by (1 + weight)
    sd: dict[str, torch.Tensor] = {}
    for i, block in enumerate(module.layers):
        t, m, p = block.temporal_block, block.mlp_block, f"model.layers.{i}."
        lru = t.rg_lru
        sd.update({
            p + "temporal_pre_norm.weight": norm.clone(), p + "channel_pre_norm.weight": norm.clone(),
            p + "temporal_block.linear_x.weight": _padded(s.read(t.linear_x.weight), (W, s.H)),
            p + "temporal_block.linear_x.bias": _padded(t.linear_x.bias, (W,)),
            p + "temporal_block.linear_y.weight": _padded(s.read(t.linear_y.weight), (W, s.H)),
            p + "temporal_block.linear_y.bias": _padded(t.linear_y.bias, (W,)),
            p + "temporal_block.linear_out.weight": _padded(s.write(t.linear_out.weight), (s.H, W)),
            p + "temporal_block.linear_out.bias": s.write(t.linear_out.bias[:, None])[:, 0],
            p + "temporal_block.conv_1d.weight": _padded(t.conv_1d.weight, (W, 1, 4)),
            p + "temporal_block.conv_1d.bias": _padded(t.conv_1d.bias, (W,)),
            p + "temporal_block.rg_lru.recurrent_param": _padded(lru.recurrent_param, (W,)),
            p + "temporal_block.rg_lru.input_gate_weight": _padded(lru.input_gate_weight, (1, W, W)),
            p + "temporal_block.rg_lru.input_gate_bias": _padded(lru.input_gate_bias, (1, W)),
            p + "temporal_block.rg_lru.recurrent_gate_weight": _padded(lru.recurrent_gate_weight, (1, W, W)),
            p + "temporal_block.rg_lru.recurrent_gate_bias": _padded(lru.recurrent_gate_bias, (1, W)),
            p + "mlp_block.gate_proj.weight": _padded(s.read(m.gate_proj.weight), (E, s.H)),
            p + "mlp_block.gate_proj.bias": _padded(m.gate_proj.bias, (E,)),
            p + "mlp_block.up_proj.weight": _padded(s.read(m.up_proj.weight), (E, s.H)),
            p + "mlp_block.up_proj.bias": _padded(m.up_proj.bias, (E,)),
            p + "mlp_block.down_proj.weight": _padded(s.write(m.down_proj.weight), (s.H, E)),
            p + "mlp_block.down_proj.bias": s.write(m.down_proj.bias[:, None])[:, 0]})
    sd["model.final_norm.weight"] = norm.clone()
    config = {"architectures": ["RecurrentGemmaForCausalLM"], "model_type": "recurrent_gemma", "hidden_size": s.H,
              "lru_width": W, "intermediate_size": 2 * E, "num_hidden_layers": len(module.layers),
              "num_attention_heads": 1, "num_key_value_heads": 1, "block_types": ["recurrent"], "conv1d_width": 4,
              "hidden_activation": "gelu_pytorch_tanh", "rms_norm_eps": 1e-6, "logits_soft_cap": SOFT_CAP,
              "attention_window_size": 16}
    return sd, config, s, math.sqrt(s.H)


EXPORTERS = {"mamba": (_mamba, "backbone.embeddings.weight", "MambaForCausalLM"),
             "hawk": (_hawk, "model.embed_tokens.weight", "RecurrentGemmaForCausalLM")}


def hf_state(module, cfg: dict) -> tuple[dict[str, torch.Tensor], dict, dict]:
    """(state_dict, transformers config, lsrl info) of the HF model for a loaded mamba or hawk module."""
    build, emb_name, _ = EXPORTERS[cfg["backend"]]
    sd, config, s, emb_scale = build(module)
    tokens = token_values(cfg)
    emb, head, what = _head(module, s, tokens, emb_scale)
    sd[emb_name], sd["lm_head.weight"] = emb, head
    config.update({"vocab_size": emb.shape[0], "tie_word_embeddings": False, "use_cache": False,
                   "pad_token_id": 0, "bos_token_id": 0, "eos_token_id": 0, "dtype": "float32"})
    scale = "" if emb_scale == 1 else f", all divided by {emb_scale:g} (the model multiplies embeddings by it)"
    info = {"tokens": tokens, "logits": what, "hidden_size": s.H, "constant_coordinate": s.const, "constant": LC,
            "input_dim": module.input_dim, "input_coordinates": s.inputs,
            "inputs_embeds": f"x at coordinates {s.inputs}, {LC:.0f} at coordinate {s.const}, zeros elsewhere{scale}"}
    return sd, config, info


def export_hf(checkpoint, directory) -> Path:
    """Write the HF directory for a mamba or hawk checkpoint (the lsrl manifest and lsrl_hf.json beside)."""
    cfg = load_config(checkpoint)
    if cfg["backend"] not in EXPORTERS:
        raise error("E0812", f"`--format hf` exports {' and '.join(EXPORTERS)} checkpoints; {checkpoint} is a "
                    f"{cfg['backend']} one", None, "compile with `--backend mamba` or `--backend hawk`, "
                    "`--dtype float32`")
    if cfg["dtype"] != "float32":
        raise error("E0812", f"`--format hf` exports float32 checkpoints (transformers' {EXPORTERS[cfg['backend']][2]}"
                    f" computes its norms and scans in float32); {checkpoint} is {cfg['dtype']}", None,
                    "compile with `--dtype float32`")
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


def model_class(checkpoint) -> str:
    """The transformers class that loads the export of `checkpoint`."""
    return EXPORTERS[load_config(checkpoint)["backend"]][2]
