"""Mamba backend: a residual stack of Mamba-1 mixers with the parameter names and shapes of transformers'
`MambaMixer` (in_proj, conv1d, x_proj, dt_proj, A_log, D, out_proj), run by lsrl.runtime.selective_scan.

The residual stream r (width H) holds the current stage's values in coordinates [0, w) and the constant 1 in
coordinate H - 1; layer l adds mixer_l(r), which writes stage l's values over stage l-1's (new - old: a value
kept at its coordinate costs nothing). One mixer per lowered stage; each mixer channel d computes

    x'_d = silu(conv_d(in_proj_x r) + shift_d),   h_d = a_d h_d + dt_d B x'_d,   y_d = C h_d + D_d x'_d,
    v_d  = y_d * silu(in_proj_z r),               out = out_proj v,

with d_state = 1, B = 1/Z and C = 1 (from a constant channel through x_proj) and dt_d = softplus(bias_d).
The constructions (docs/backends.md, "mamba") rest on float facts checked on the platform:
silu(x) == x for x >= 17 (float32; 37 in float64), silu(x) == -0 for x <= -710, softplus(64) == 64 and
softplus(-1000) == 0 (torch's threshold 20). Every channel is one of

- const: x' = Z (conv bias), gate Z: v = Z^2 (the constant 1 of the next layer's stream, and shift removal);
- lin:   x' = f + M, f an affine form of the stage input at lag 0..3 (conv taps, zero-padded before the
         first step), M = the power of two that keeps f + M >= 17 over f's range: x' is exact, v = Z (f + M);
- relu:  x' = silu(k f), D = 1/k: relu(f) exactly once |k f| >= 710 (k from the ReLU's margin);
- prod:  x' = a + M_a, gate z = b + M_b (both shifted past 17): v = (a + M_a)(b + M_b), from which out_proj
         subtracts M_b a, M_a b and M_a M_b through lin and const channels;
- state: dt = Z, A_log = log(-ln(lambda) / Z) (-1e4 for lambda = 1: a = 1 exactly), x' = w + M: h sums
         lambda^(t-k) (w_k + M), and out_proj removes M sum_k lambda^(t-k) through a reference channel with
         x' = Z; the init enters as lambda^t init = init (1 - (1 - lambda) G).

Shift registers (nilpotent blocks, A^4 = 0) are lin channels at lags 1-3 plus first-step indicators
[t = j] = lag_{j-1}(1) - lag_j(1) for the init's first steps. Integer programs are integer arithmetic
throughout (exact while every sum stays below 2^24 in float32).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from lsrl.backends.base import SILU_SLOPE, Emitted, HeadedStack, Placement
from lsrl.backends.channels import (
    D_CONV,
    EMPTY,
    LAG0,
    Activation,
    Chan,
    ChannelBackend,
    Form,
    Plan,
    permuted_unbasis,
    pow2_at_least,
    put,
    stream_row,
    unbasis_of,
)
from torch import nn

from lsrl.guarantee.facts import Facts
from lsrl.guarantee.propagate import Context, gamma
from lsrl.ir.graph import Graph
from lsrl.ir.rational import RatArray
from lsrl.lowering.stack import Stack
from lsrl.runtime.scan import selective_scan

Z = 64  # constant channel and gate value: silu(64) == 64 and softplus(64) == 64 in float32 and float64
DT_OFF = -1000.0  # dt bias of channels without a scan: softplus(-1000) == 0, so h stays 0
A_LOG_HOLD = -1e4  # A = -exp(-1e4) = -0: the decay exp(dt A) is exactly 1
A_LOG_ZERO = 10.0  # A = -exp(10): the decay exp(Z A) is exactly 0
SILU_ID = {torch.float32: 17, torch.float64: 37}  # silu(x) == x for x >= this
SILU_ZERO = 710  # silu(x) == -0 for x <= -this (float32 from -88.7, float64 from -709.8)
SURROGATE = 0.2785  # max_w |silu(k w) / k - relu(w)| = 0.2785 / k


# ---------------------------------------------------------------------------------------------- module


class Mixer(nn.Module):
    """One Mamba-1 mixer, parameter for parameter transformers' MambaMixer (use_bias=False, conv bias)."""

    def __init__(self, hidden: int, inner: int, d_state: int = 1, dt_rank: int = 1, dtype=torch.float64):
        super().__init__()
        kw = {"dtype": dtype}
        self.in_proj = nn.Linear(hidden, 2 * inner, bias=False, **kw)
        self.conv1d = nn.Conv1d(inner, inner, D_CONV, groups=inner, padding=D_CONV - 1, **kw)
        self.x_proj = nn.Linear(inner, dt_rank + 2 * d_state, bias=False, **kw)
        self.dt_proj = nn.Linear(dt_rank, inner, **kw)
        self.A_log = nn.Parameter(torch.zeros(inner, d_state, **kw))
        self.D = nn.Parameter(torch.ones(inner, **kw))
        self.out_proj = nn.Linear(inner, hidden, bias=False, **kw)
        self.dt_rank, self.d_state = dt_rank, d_state

    def _prepare(self, u: torch.Tensor):
        """x' (after conv and silu), z, dt (before its bias), B, C: every input of the scan, for the whole
        sequence (layouts (batch, channels or states, time))."""
        L = u.shape[1]
        x, z = self.in_proj(u).transpose(1, 2).chunk(2, dim=1)
        x = F.silu(self.conv1d(x)[..., :L])
        dt, B, C = self.x_proj(x.transpose(1, 2)).split([self.dt_rank, self.d_state, self.d_state], dim=-1)
        delta = (dt @ self.dt_proj.weight.T).transpose(1, 2)
        return x, z, delta, B.transpose(1, 2).contiguous(), C.transpose(1, 2).contiguous()

    def _scan(self, x, z, delta, B, C, impl, h0=None, last=False):
        # a channel whose dt is exactly 0 at every step keeps h = 0, so its scan output is D x' (bitwise):
        # the scan runs on the other channels only (most of a compiled mixer's channels have no state)
        y = (x * self.D[:, None]) * F.silu(z)
        on = (F.softplus(delta + self.dt_proj.bias[:, None]) != 0).any(dim=2).any(dim=0).nonzero()[:, 0]
        h = x.new_zeros(x.shape[0], x.shape[1], self.d_state) if h0 is None else h0.clone()
        if len(on):
            out = selective_scan(x[:, on].contiguous(), delta[:, on].contiguous(), -torch.exp(self.A_log[on]), B, C,
                                 self.D[on], z[:, on].contiguous(), self.dt_proj.bias[on], True,
                                 None if h0 is None else h0[:, on].contiguous(), last, impl=impl)
            y[:, on], h_on = out if last else (out, None)
            if last:
                h[:, on] = h_on.to(h.dtype)
        return (y, h) if last else y

    def forward(self, u: torch.Tensor, impl: str | None = None) -> torch.Tensor:
        return self.out_proj(self._scan(*self._prepare(u), impl).transpose(1, 2))

    def scan_state(self, u: torch.Tensor, t: int, impl: str | None = None) -> torch.Tensor:
        """The scan state h (batch, channels, d_state) after step t."""
        x, z, delta, B, C = (a[..., :t + 1] for a in self._prepare(u))
        return self._scan(x, z, delta, B, C, impl, last=True)[1]

    def resume(self, u: torch.Tensor, t: int, h: torch.Tensor, impl: str | None = None) -> torch.Tensor:
        """The output at steps t + 1.. when the scan state after step t is h."""
        x, z, delta, B, C = (a[..., t + 1:].contiguous() for a in self._prepare(u))
        return self.out_proj(self._scan(x, z, delta, B, C, impl, h0=h).transpose(1, 2))


class Block(nn.Module):
    """One residual layer, r + mixer(r): transformers' MambaBlock without its RMSNorm (the HF export adds it as
    an exact identity). Its output is the stream after the layer, which the placements describe."""

    def __init__(self, hidden: int, inner: int, d_state: int, dtype: torch.dtype, slots=(), unbasis=None):
        super().__init__()
        self.mixer = Mixer(hidden, inner, d_state=d_state, dtype=dtype)
        self.scan_impl: str | None = None  # None: lsrl.runtime.scan picks (Triton on CUDA, else torch)
        self.slots = [tuple(s) for s in slots]  # per scan state n: (its channel, the stream coordinate holding it
        # or -1)
        self.unbasis = unbasis or {}  # a rebased stream (obfuscation): each slot row's value from the units

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r + self.mixer(r, self.scan_impl)

    def resume(self, r: torch.Tensor, t: int, out_t: torch.Tensor) -> torch.Tensor:
        """The block's output at steps t + 1.. when its output at step t was set to `out_t` (an intervention):
        each state slot continues from the value its row holds there."""
        with torch.no_grad():
            h = self.mixer.scan_state(r, t, self.scan_impl)
            for n, (chan, row) in enumerate(self.slots):
                if row >= 0:
                    h[:, chan, n] = stream_row(out_t, row, self.unbasis)
            return r[:, t + 1:] + self.mixer.resume(r, t, h, self.scan_impl)


class MambaStack(HeadedStack):
    """forward(x[B, T, d_in]): the stream [x, 0.., 1] through the residual blocks, then the read-out heads."""

    def __init__(self, config: dict, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.hidden, self.input_dim = config["hidden"], config["input_dim"]
        # where the stream's logical coordinates sit (identity unless obfuscated): x first, the constant last
        self.stream = list(config.get("stream") or range(self.hidden))
        slots = config.get("slots") or [()] * len(config["inners"])
        unbasis = unbasis_of(config)
        self.layers = nn.ModuleList(Block(self.hidden, n, k, dtype, sl, unbasis)
                                    for n, k, sl in zip(config["inners"], config["states"], slots, strict=True))
        self._add_heads(config, dtype)

    def set_scan_impl(self, impl: str | None) -> None:
        """Force the scan path of every layer ("torch", "triton"; None: automatic)."""
        for block in self.layers:
            block.scan_impl = impl

    def body(self, x: torch.Tensor) -> torch.Tensor:
        r = x.new_zeros(*x.shape[:-1], self.hidden)
        r[..., self.stream[:self.input_dim]] = x
        r[..., self.stream[-1]] = 1
        for block in self.layers:
            r = block(r)
        return r


# ---------------------------------------------------------------------------------------------- channels


@dataclass
class MambaPlan(Plan):
    """A mixer's channels: x' = silu(conv(x) + shift), gate silu(z); states as per-row scan slots."""

    # state: per scan state n, its drive (form, bias), lambda, the lin channel whose x' feeds B_n, the state
    # channel that holds it, and the row whose value it is (None: the reference sum G)
    slots: list[dict] = field(default_factory=list)
    state_reads: list[tuple[int, int, Fraction]] = field(default_factory=list)  # (row, slot, coef)

    CONST_X = Fraction(Z)

    def gain(self, ch: Chan) -> Fraction:
        """Z (gate Z), Z^2 for const (value 1), 1 for prod (relu: 1 / k is its D)."""
        return {"const": Fraction(Z * Z), "prod": Fraction(1)}.get(ch.kind, Fraction(Z))

    def state(self, row: int, form: Form, bias: Fraction, lam: Fraction, init: Fraction, coef: Fraction) -> None:
        """coef s_t, s_t = lam s_{t-1} + w_t, s_0 = init: a scan state of its own (slot n), whose channel holds
        s plus the current drives of the mixer's other slots (B and C are shared); `crosstalk` removes those."""
        self._read_slot(row, self._slot(form, bias, lam, row), coef)
        self.const(row, coef * init)
        if init and lam != 1:  # lam^t init = init (1 - (1 - lam) G), G = sum_k lam^(t-k): a slot driven by 1
            self._read_slot(row, self._slot(EMPTY, Fraction(1), lam, None), -coef * init * (1 - lam))

    def _slot(self, form: Form, bias: Fraction, lam: Fraction, row: int | None) -> int:
        for n, sl in enumerate(self.slots):
            if (sl["form"], sl["bias"], sl["lam"]) == (form, bias, lam):
                return n
        n = len(self.slots)
        drive = self._add(Chan("lin", form, bias, shift=self._shift(form, bias, LAG0, self.act.x_ident)))
        chan = self._add(Chan("state", EMPTY, Fraction(0), shift=Fraction(Z), decay=lam, slot=n))
        self.slots.append({"form": form, "bias": bias, "lam": lam, "drive": drive, "chan": chan, "row": row})
        return n

    def _read_slot(self, row: int, n: int, coef: Fraction) -> None:
        self.read(row, self.slots[n]["chan"], coef)
        self.state_reads.append((row, n, coef))

    def crosstalk(self) -> None:
        """Each slot's channel also holds the other slots' current drives (their decay is 0 there): removed."""
        for row, n, coef in self.state_reads:
            for m, sl in enumerate(self.slots):
                if m != n:
                    self.lin(row, sl["form"], sl["bias"], -coef)

    def pinned(self) -> set[int]:
        return super().pinned() | {sl[k] for sl in self.slots for k in ("drive", "chan")}

    def renumber(self, new: dict[int, int]) -> None:
        for sl in self.slots:
            sl["drive"], sl["chan"] = new[sl["drive"]], new[sl["chan"]]

    def state_errors(self, ctx: Context, max_len: int, rho, mag, ints, val, exact_val, own) -> None:
        """A state channel's |value| (its state, bounded by range analysis, plus the other slots' drives),
        whether it is exact integer arithmetic, and its per-step error: B's rounding (the drive's x', then
        x' - M), the sum over slots, the accumulation, and for 0 < lambda < 1 the rounding of exp(dt A)."""
        u = ctx.u
        drives = [sl["drive"] for sl in self.slots]
        for sl in self.slots:
            d, lam, e = sl["chan"], float(sl["lam"]), sl["drive"]
            G = max_len if lam == 1 else 1 / (1 - lam)
            s = ctx.out[sl["row"]] if sl["row"] is not None else G * (mag[e] - float(self.chans[e].shift))
            val[d] = s + sum(mag[f] for f in drives if f != e)
            exact_val[d] = all(ints[f] for f in drives) and lam == 1 and val[d] + mag[e] <= 1 / u
            if not exact_val[d]:
                own[d] = rho[e] + gamma(len(drives) + 2, u) * (val[d] + mag[e]) + (0 if lam == 1 else 4 * u * s)


def mixer_weights(p: Plan, hidden: int) -> dict[str, np.ndarray]:
    """The MambaMixer parameters (float64) of a plan, reading the stream of width `hidden`."""
    n, N = len(p.chans), max(1, len(p.slots))
    W = {"in_proj.weight": np.zeros((2 * n, hidden)), "conv1d.weight": np.zeros((n, 1, D_CONV)),
         "conv1d.bias": np.zeros(n), "x_proj.weight": np.zeros((1 + 2 * N, n)), "dt_proj.weight": np.zeros((n, 1)),
         "dt_proj.bias": np.full(n, DT_OFF), "A_log": np.zeros((n, N)), "D": np.ones(n),
         "out_proj.weight": np.zeros((hidden, n))}
    const = hidden - 1
    for d, ch in enumerate(p.chans):
        x = W["in_proj.weight"][d]
        put(x, [(j, float(ch.k * v)) for j, v in ch.form.terms])
        x[const] = float(ch.k * ch.bias)
        for lag, w in ch.taps:
            W["conv1d.weight"][d, 0, D_CONV - 1 - lag] = float(w)
        W["conv1d.bias"][d] = float(ch.shift)
        z = W["in_proj.weight"][n + d]
        if ch.kind == "prod":
            fb, bb = ch.gate
            put(z, [(j, float(v)) for j, v in fb.terms])
            z[const] = float(bb)
        else:
            z[const] = Z
        if ch.kind == "relu":
            W["D"][d] = float(1 / ch.k)
    for m, sl in enumerate(p.slots):  # x' = Z, dt = Z: h[d, m] += Z B_m Z = drive_m; decay 0 on the other slots
        d, lam = sl["chan"], sl["lam"]
        W["D"][d], W["dt_proj.bias"][d] = 0.0, Z
        W["A_log"][d] = A_LOG_ZERO
        W["A_log"][d, m] = A_LOG_HOLD if lam == 1 else math.log(-math.log(float(lam)) / Z)
        e = sl["drive"]  # B_m = (x'_e - M_e) / Z^2, the drive; C_m = x'_0 / Z = 1
        W["x_proj.weight"][1 + m, e] += 1 / Z**2
        W["x_proj.weight"][1 + m, 0] -= float(p.chans[e].shift) / Z**3
        W["x_proj.weight"][1 + N + m, 0] = 1 / Z
    for r, reads in p.rows.items():
        for d, c in reads.items():
            W["out_proj.weight"][r, d] = float(c / p.gain(p.chans[d]))
    return W


# ---------------------------------------------------------------------------------------------- backend


class MambaBackend(ChannelBackend):
    name = "mamba"
    summary = ("Linear, products and diagonal [0, 1] / shift-register LinStates exact (shifted silu channels, "
               "integer arithmetic for integer programs); ReLU as silu(k w) / k, exact past its margin; "
               "rotations legalised to a counter and decoder up to max_len")

    def emit(self, graph: Graph, stack: Stack, facts: Facts | None, dtype: torch.dtype = torch.float64) -> Emitted:
        hidden = max(stack.widths()) + 1
        act = Activation(SILU_ID[dtype], SILU_ID[dtype], SILU_ZERO, SURROGATE, SILU_SLOPE)
        plans = self.plans(stack, facts, lambda lo, hi, w_in, w_out: MambaPlan(lo, hi, act, width_in=w_in,
                                                                                 width_out=w_out))
        config = {"hidden": hidden, "input_dim": stack.input_dim, "inners": [len(p.chans) for p in plans],
                  "states": [max(1, len(p.slots)) for p in plans],
                  "slots": [[[sl["chan"], -1 if sl["row"] is None else sl["row"]] for sl in p.slots] for p in plans],
                  "hiddens": [hidden] * len(plans),  # each layer's output units: the residual stream
                  "output_dim": stack.output.b.shape[0], "readout_in": hidden,
                  "probes": {n: r.b.shape[0] for n, r in stack.probes}}
        module = self.build_module(config)
        with torch.no_grad():
            for layer, p in zip(module.layers, plans, strict=True):
                for name, value in mixer_weights(p, hidden).items():
                    layer.mixer.get_parameter(name).copy_(torch.from_numpy(value))
        last = stack.stages[-1].out.width if stack.stages else stack.input_dim
        module.set_heads(stack, RatArray.from_entries((last, hidden), {(i, i): 1 for i in range(last)}))
        places = [Placement(seg.node, f"layers.{i}", seg.start, seg.start + seg.dim, RatArray.eye(seg.dim),
                            RatArray.zeros(seg.dim)) for i, st in enumerate(stack.stages) for seg in st.out.segments]
        return Emitted(module, config, places, None, {"plans": plans, "max_len": facts.max_len})

    def build_module(self, config: dict) -> nn.Module:
        return MambaStack(config)

    def permuted(self, module: MambaStack, config: dict, p: torch.Tensor, rng) -> tuple[MambaStack, dict]:
        """The module over the stream permuted by p (config: the new stream's), each mixer's channels permuted
        too (rows, conv taps, scan parameters, out_proj columns; the scan's state slots follow their channels)."""
        chans = [rng.permutation(n) for n in config["inners"]]  # new channel k is old channel chans[k]
        config = {**config, "slots": [[[int(np.argsort(q)[c]), int(p[row]) if row >= 0 else -1] for c, row in sl]
                                      for q, sl in zip(chans, config.get("slots") or [[]] * len(chans), strict=True)]}
        if config.get("unbasis"):
            config["unbasis"] = permuted_unbasis(config, p)
        rebuilt = self.build_module(config).to(next(module.parameters()).dtype)
        for old, new, q in zip(module.layers, rebuilt.layers, chans, strict=True):
            o, m, q = old.mixer, new.mixer, torch.as_tensor(q)
            n = len(q)
            w_in = o.in_proj.weight[torch.cat([q, q + n])]
            m.in_proj.weight.zero_()
            m.in_proj.weight[:, p] = w_in
            for name in ("conv1d.weight", "conv1d.bias", "dt_proj.weight", "dt_proj.bias", "A_log", "D"):
                m.get_parameter(name).copy_(o.get_parameter(name)[q])
            m.x_proj.weight.copy_(o.x_proj.weight[:, q])
            m.out_proj.weight.zero_()
            m.out_proj.weight[p] = o.out_proj.weight[:, q]
        return rebuilt, config

    def constant_row(self, config: dict) -> int | None:
        return list(config.get("stream") or range(config["hidden"]))[-1]

    def stream_io(self, module: MambaStack) -> list[tuple[list[nn.Linear], list[nn.Linear]]]:
        return [([b.mixer.in_proj], [b.mixer.out_proj]) for b in module.layers]

    def stage_io(self, module: MambaStack, stages) -> list[tuple[list[nn.Linear], list[nn.Linear]]]:
        return self.stream_io(module)  # one mixer per stage

    def slot_rows(self, config: dict) -> list[int]:
        return [row for sl in config.get("slots") or [] for _, row in sl if row >= 0]

    input_gain = float(Z)  # a lin channel: gate Z

    def input_shift(self, lo: float) -> float:
        """Past silu's identity threshold in float32 and float64 alike (the larger one)."""
        ident = max(SILU_ID.values())
        return 0.0 if lo >= ident else float(pow2_at_least(ident - lo))

    def with_input_channels(self, module: MambaStack, config: dict, inputs: list, shifts: list[float]):
        """Layer 0's mixer with one more lin channel per input coordinate i: x' = silu(r_i + shift) = r_i + shift,
        gate Z, no scan; out_proj writes (M - I) e_i from it and removes the shift through the constant channel
        (channel 0, v = Z^2)."""
        if not inputs:
            return module, config
        n, d, const = config["inners"][0], len(inputs), self.constant_row(config)
        config = {**config, "inners": [n + d, *config["inners"][1:]]}
        new = self.build_module(config).to(next(module.parameters()).dtype)
        with torch.no_grad():
            for name, t in module.state_dict().items():
                if not name.startswith("layers.0."):
                    new.get_parameter(name).copy_(t)
            o, m = module.layers[0].mixer, new.layers[0].mixer
            for name in ("conv1d.weight", "conv1d.bias", "dt_proj.weight", "dt_proj.bias", "A_log", "D"):
                m.get_parameter(name)[:n] = o.get_parameter(name)
            m.dt_proj.weight[n:], m.dt_proj.bias[n:], m.A_log[n:], m.D[n:] = 0.0, DT_OFF, 0.0, 1.0
            m.x_proj.weight.zero_()
            m.x_proj.weight[:, :n] = o.x_proj.weight
            w_in, w_out = m.in_proj.weight, m.out_proj.weight
            w_in.zero_()
            w_in[:n], w_in[n + d:2 * n + d] = o.in_proj.weight[:n], o.in_proj.weight[n:]
            w_out.zero_()
            w_out[:, :n] = o.out_proj.weight
            m.conv1d.weight[n:] = 0.0
            for j, ((i, col), shift) in enumerate(zip(inputs, shifts, strict=True)):
                w_in[n + j, i] = 1.0
                w_in[2 * n + d + j, const] = Z
                m.conv1d.weight[n + j, 0, D_CONV - 1] = 1.0
                m.conv1d.bias[n + j] = shift
                col = torch.from_numpy(col).to(w_out.dtype)
                w_out[:, n + j] = col / Z
                w_out[:, 0] -= col * (shift / Z**2)
        return new, config

    def conditions(self, dtype: torch.dtype) -> tuple[str, ...]:
        return (f"silu(x) == x for x >= {SILU_ID[dtype]} and silu(x) == 0 for x <= -{SILU_ZERO} ({dtype})",
                "softplus(64) == 64 and softplus(-1000) == 0; exp(0) == 1",
                "the scan accumulates in the model's dtype (float32 in the Triton kernel)")

    @functools.cache  # noqa: B019 - a module-level singleton; the machine does not change
    def check_platform(self, dtype: torch.dtype) -> tuple[str, ...]:
        big = torch.tensor([SILU_ID[dtype], 1e6, 2.0**40], dtype=dtype)
        failed = []
        if not torch.equal(F.silu(big), big) or not torch.equal(F.silu(-big * SILU_ZERO), torch.zeros_like(big)):
            failed.append(self.conditions(dtype)[0])
        sp = F.softplus(torch.tensor([float(Z), DT_OFF], dtype=dtype))
        if sp.tolist() != [Z, 0.0] or torch.exp(-torch.exp(torch.tensor(A_LOG_HOLD, dtype=dtype)) * Z) != 1:
            failed.append(self.conditions(dtype)[1])
        return tuple(failed)


BACKEND = MambaBackend()
__all__ = ["BACKEND", "Block", "MambaStack", "Mixer"]
