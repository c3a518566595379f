"""Hawk backend: Griffin residual blocks with every temporal block recurrent, with the parameter names and
shapes of transformers' RecurrentGemma (`temporal_block.{linear_x, linear_y, linear_out, conv_1d, rg_lru}`,
`mlp_block.{gate_proj, up_proj, down_proj}`); the RG-LRU recurrence runs on lsrl.runtime.linear_scan.

Each layer adds two halves to a residual stream r (width H, the current stage's values first):

    temporal: v = rg_lru(conv_1d(linear_x r)) * gelu(linear_y r),   r += linear_out v
    mlp:      v = gelu(gate_proj r) * up_proj r,                     r += down_proj v

and every lowered stage takes one half (a state stage a temporal one; the others the next free half), so a
layer usually hosts two stages. Both halves are gated channels (backends/channels.py) with X the x path
(linear, no activation: the conv's taps give lags 1-3) and Y the gate: gelu(x) == x for x >= 8 and
gelu(x) == 0 for x <= -8 (tanh approximation, float32 and float64), so lin channels use Y = G = 16, ReLU is
gelu(k w) / k, and products shift one factor only: X = a, Y = b + M_b.

The RG-LRU computes a = exp(-8 sigmoid(gate_a) softplus(recurrent_param)), multiplies its input by
sqrt(1 - a^2) (1 at the first step, where it also resets the state) and scans h = a h + x. Channels that
carry no state get a = 0 exactly (softplus(100) * 8 = 800: exp(-800) == 0), so h = x. A state s with decay
lambda is two channels of the same a:
- P, scaled by K = 1 / sqrt(1 - a^2) and gated off at the first step (input gate sigmoid(40 - 2000 [t = 0]),
  the indicator from the conv of a constant): P_t = sum_{1 <= k <= t} lambda^(t-k) w_k;
- Q, gated on at the first step only: Q_t = lambda^t (w_0 + lambda init);
and s = P + Q. lambda = 1 cannot be exact in real arithmetic (a = 1 zeroes the input); in floats it is: with
log a in a window of width 2 (float32: (-2^-25, -2^-26)) exp(log a) rounds to 1 while exp(2 log a) rounds
to 1 - 2^-24, so sqrt(1 - a^2) = 2^-12 exactly and K = 2^12 (float64: the multiplier 2^-26 with a rounded
through float32, as transformers and recurrentgemma do before their scans). The module checks these
roundings on the device it runs on before its first forward there and refuses if they fail.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np
import torch
import torch.nn.functional as F
from lsrl.backends.base import GELU_SLOPE, Emitted, HeadedStack, Placement
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
from lsrl.runtime.scan import linear_scan

G = 16  # the gate of lin, const and state channels: gelu(16) == 16
GELU_EXACT = 8  # gelu(x) == x for x >= 8 and gelu(x) == 0 for x <= -8 (float32 from 5.06, float64 from 7.15)
GELU_SURROGATE = 0.170  # max_w |gelu(k w) / k - relu(w)| = 0.170 / k
GATE_ON = 40.0  # sigmoid(40) == 1 in float32 and float64
FIRST_OFF = -2000.0  # sigmoid(40 - 2000) == 0: P's input gate at the first step
A_ZERO = 100.0  # recurrent_param of a channel without state: a = exp(-8 softplus(100)) == 0
C_LOG_A = -8.0  # transformers' and recurrentgemma's constant in log a
LOG_A_ONE = {torch.float32: -2.24e-8, torch.float64: -(2.0**-53)}  # log a of an integrator, inside the window
MULT_ONE = {torch.float32: 2.0**-12, torch.float64: 2.0**-26}  # its sqrt(1 - a^2)


# ---------------------------------------------------------------------------------------------- module


def decay(gate_a: torch.Tensor, recurrent_param: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """The RG-LRU's a = exp(log a) and input multiplier sqrt(1 - a^2), log a = -8 gate_a softplus(param), in
    transformers' order of operations (the module, its device check and the emission all use this)."""
    log_a = C_LOG_A * gate_a * F.softplus(recurrent_param)
    return torch.exp(log_a), torch.sqrt(1 - torch.exp(2 * log_a))


class RGLRU(nn.Module):
    """transformers' RecurrentGemmaRglru with one head (block-diagonal gates of one block), its scan on
    lsrl.runtime.linear_scan in the model's dtype (a passes through float32 first, as in transformers)."""

    def __init__(self, width: int, dtype: torch.dtype):
        super().__init__()
        kw = {"dtype": dtype}
        self.recurrent_param = nn.Parameter(torch.zeros(width, **kw))
        self.input_gate_weight = nn.Parameter(torch.zeros(1, width, width, **kw))
        self.input_gate_bias = nn.Parameter(torch.zeros(1, width, **kw))
        self.recurrent_gate_weight = nn.Parameter(torch.zeros(1, width, width, **kw))
        self.recurrent_gate_bias = nn.Parameter(torch.zeros(1, width, **kw))

    def coefficients(self, x: torch.Tensor, reset: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """The scan's a and input over x (batch, time, width), in transformers' order of operations; `reset`:
        x starts at position 0 (a = 0 and no input normalisation there)."""
        b, t, w = x.shape
        flat = x.reshape(b * t, 1, w).permute(1, 0, 2)
        gate_x = torch.sigmoid(torch.baddbmm(self.input_gate_bias[:, None, :], flat, self.input_gate_weight)
                               .transpose(0, 1).reshape(b, t, w))
        gate_a = torch.sigmoid(torch.baddbmm(self.recurrent_gate_bias[:, None, :], flat, self.recurrent_gate_weight)
                               .transpose(0, 1).reshape(b, t, w))
        a, mult = decay(gate_a, self.recurrent_param)
        if reset:
            mult = mult.clone()
            mult[:, 0] = 1
            a = a.clone()
            a[:, 0] = 0
        return a.float().to(x.dtype), (x * gate_x) * mult

    def forward(self, x, h0=None, reset=True, last=False, impl=None):
        # a channel whose a is exactly 0 at every step has h = its input, bitwise (0 h + x): the scan runs on the
        # other channels only (most of a compiled block's channels carry no state)
        a, inp = self.coefficients(x, reset)
        on = (a != 0).any(dim=1).any(dim=0).nonzero()[:, 0]
        h = inp.clone()
        h_last = h[:, -1].clone() if last else None
        if len(on):
            out = linear_scan(a[..., on].contiguous(), inp[..., on].contiguous(),
                              None if h0 is None else h0[:, on].contiguous(), last, impl=impl)
            h[..., on], h_on = out if last else (out, None)
            if last:
                h_last[:, on] = h_on.to(h_last.dtype)
        return (h, h_last) if last else h


class RecurrentBlock(nn.Module):
    """transformers' RecurrentGemmaRecurrentBlock: linear_out(rg_lru(conv_1d(linear_x r)) * gelu(linear_y r))."""

    def __init__(self, hidden: int, width: int, dtype: torch.dtype):
        super().__init__()
        kw = {"dtype": dtype}
        self.linear_y = nn.Linear(hidden, width, **kw)
        self.linear_x = nn.Linear(hidden, width, **kw)
        self.linear_out = nn.Linear(width, hidden, **kw)
        self.conv_1d = nn.Conv1d(width, width, D_CONV, groups=width, padding=D_CONV - 1, **kw)
        self.rg_lru = RGLRU(width, dtype)
        self.scan_impl: str | None = None

    def _branches(self, r: torch.Tensor):
        y = F.gelu(self.linear_y(r), approximate="tanh")
        x = self.conv_1d(self.linear_x(r).transpose(1, 2))[..., :r.shape[1]].transpose(1, 2)
        return x, y

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        x, y = self._branches(r)
        return self.linear_out(self.rg_lru(x, impl=self.scan_impl) * y)

    def lru_state(self, r: torch.Tensor, t: int) -> torch.Tensor:
        """The RG-LRU state (batch, width) after step t."""
        x, _ = self._branches(r)
        return self.rg_lru(x[:, :t + 1], last=True, impl=self.scan_impl)[1]

    def resume(self, r: torch.Tensor, t: int, h: torch.Tensor) -> torch.Tensor:
        """The block's output at steps t + 1.. when the RG-LRU state after step t is h."""
        x, y = self._branches(r)
        out = self.rg_lru(x[:, t + 1:], h0=h, reset=False, impl=self.scan_impl)
        return self.linear_out(out * y[:, t + 1:])


class MlpBlock(nn.Module):
    """transformers' RecurrentGemmaMlp: down_proj(gelu(gate_proj r) * up_proj r)."""

    def __init__(self, hidden: int, width: int, dtype: torch.dtype):
        super().__init__()
        kw = {"dtype": dtype}
        self.gate_proj = nn.Linear(hidden, width, **kw)
        self.up_proj = nn.Linear(hidden, width, **kw)
        self.down_proj = nn.Linear(width, hidden, **kw)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return self.down_proj(F.gelu(self.gate_proj(r), approximate="tanh") * self.up_proj(r))


class TemporalResidual(nn.Module):
    """r + temporal_block(r): the stream between a layer's halves, as a module of its own so hooks (traces,
    interventions) see it. It holds no parameters: the block stays registered in the layer only."""

    def __init__(self, block: RecurrentBlock, slots, unbasis=None):
        super().__init__()
        object.__setattr__(self, "block", block)
        self.slots = [tuple(s) for s in slots]  # per state: (its P channel, its Q channel, its stream row)
        self.unbasis = unbasis or {}  # a rebased stream (obfuscation): each slot row's value from the units

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        return r + self.block(r)

    def resume(self, r: torch.Tensor, t: int, out_t: torch.Tensor) -> torch.Tensor:
        """The output at steps t + 1.. when the output at step t was set to `out_t` (an intervention): each
        state continues from its patched row, P taking the change (s = P + Q)."""
        with torch.no_grad():
            h = self.block.lru_state(r, t)
            for p, q, row in self.slots:
                h[:, p] = stream_row(out_t, row, self.unbasis) - h[:, q]
            return r[:, t + 1:] + self.block.resume(r, t, h)


class ResidualBlock(nn.Module):
    """transformers' RecurrentGemmaDecoderLayer without its RMSNorms (the HF export adds them as exact
    identities): r + temporal(r), then + mlp(.)."""

    def __init__(self, hidden: int, lru: int, mlp: int, dtype: torch.dtype, slots=(), unbasis=None):
        super().__init__()
        self.temporal_block = RecurrentBlock(hidden, lru, dtype)
        self.mlp_block = MlpBlock(hidden, mlp, dtype)
        self.residual = TemporalResidual(self.temporal_block, slots, unbasis)

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        r = self.residual(r)
        return r + self.mlp_block(r)


class HawkStack(HeadedStack):
    """forward(x[B, T, d_in]): the stream [x, 0..] through the residual blocks, then the read-out heads."""

    def __init__(self, config: dict, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.hidden, self.input_dim = config["hidden"], config["input_dim"]
        self.stream = list(config.get("stream") or range(self.hidden))  # logical -> physical coordinate
        slots = config.get("slots") or [()] * len(config["lru"])
        unbasis = unbasis_of(config)
        self.layers = nn.ModuleList(ResidualBlock(self.hidden, n, m, dtype, sl, unbasis)
                                    for n, m, sl in zip(config["lru"], config["mlp"], slots, strict=True))
        self.integrators = [list(c) for c in config.get("integrators") or [[] for _ in config["lru"]]]
        self._checked: set = set()
        self._add_heads(config, dtype)

    def set_scan_impl(self, impl: str | None) -> None:
        """Force the scan path of every layer ("torch", "triton"; None: automatic)."""
        for block in self.layers:
            block.temporal_block.scan_impl = impl

    def check_device(self) -> None:
        """Every integrator's a is exactly 1 and its sqrt(1 - a^2) exactly the multiplier its input was scaled
        for, as computed here (a device whose exp rounds otherwise would break the exact sums)."""
        p = self.readout.weight
        if (p.device, p.dtype) in self._checked:
            return
        with torch.no_grad():
            for i, (block, chans) in enumerate(zip(self.layers, self.integrators, strict=True)):
                if not chans:
                    continue
                lru = block.temporal_block.rg_lru
                a, mult = decay(torch.sigmoid(lru.recurrent_gate_bias[0, chans]), lru.recurrent_param[chans])
                if not (bool((a.float() == 1).all()) and bool((mult == MULT_ONE.get(p.dtype, math.nan)).all())):
                    raise RuntimeError(
                        f"hawk layer {i}: on {p.device} ({p.dtype}) exp(log a) does not round to 1 with "
                        f"sqrt(1 - a^2) == {MULT_ONE.get(p.dtype)}, which the exact integrators rely on; "
                        "run this model on another device (CPU) or dtype")
        self._checked.add((p.device, p.dtype))

    def body(self, x: torch.Tensor) -> torch.Tensor:
        self.check_device()
        r = x.new_zeros(*x.shape[:-1], self.hidden)
        r[..., self.stream[:self.input_dim]] = x
        for block in self.layers:
            r = block(r)
        return r


# ---------------------------------------------------------------------------------------------- plans


@functools.cache
def realise_decay(lam: Fraction, dtype: torch.dtype) -> tuple[float, float, float]:
    """(recurrent_param, K, |a - lambda|) of a state channel with decay lambda in (0, 1], computed with the
    module's operations in `dtype`: K = 1 / sqrt(1 - a^2) as that dtype computes it (cached: emission and
    every error analysis ask)."""
    target = -LOG_A_ONE[dtype] if lam == 1 else -math.log(float(lam))
    param = math.log(math.expm1(target / -C_LOG_A))
    a_t, mult_t = decay(torch.sigmoid(torch.tensor([GATE_ON], dtype=dtype)), torch.tensor([param], dtype=dtype))
    a, mult = float(a_t.float()[0]), float(mult_t[0])
    if lam == 1 and (a != 1 or mult != MULT_ONE[dtype]):
        raise ValueError(f"exp does not round as the hawk integrators need on this machine ({dtype})")
    return param, 1 / mult, abs(a - float(lam))


@dataclass
class HawkPlan(Plan):
    """One half-layer's channels; states as P (scaled, from the second step) + Q (the first step's value)."""

    dtype: torch.dtype = torch.float64
    slots: list[list[int]] = field(default_factory=list)  # per state row: [P, Q, row]

    def gain(self, ch: Chan) -> Fraction:
        """G (gate G), k for relu (gelu(k w)), 1 for prod."""
        return {"prod": Fraction(1), "relu": ch.k}.get(ch.kind, Fraction(G))

    def state(self, row: int, form: Form, bias: Fraction, lam: Fraction, init: Fraction, coef: Fraction) -> None:
        self._add(Chan("first", EMPTY, Fraction(1), taps=((0, Fraction(1)), (1, Fraction(-1)))))
        P = self._add(Chan("state", form, bias, decay=lam, slot=0))
        Q = self._add(Chan("state", form, bias + lam * init, decay=lam, slot=1))
        self.read(row, P, coef)
        self.read(row, Q, coef)
        self.slots.append([P, Q, row])

    def renumber(self, new: dict[int, int]) -> None:
        self.slots = [[new[P], new[Q], row] for P, Q, row in self.slots]

    def state_errors(self, ctx: Context, max_len: int, rho, mag, ints, val, exact_val, own) -> None:
        """P sums up to max_len drives (1 / (1 - lambda) decayed) and is at most |s| + |Q| (range analysis bounds
        the state s), Q holds one value; both are exact integer
        arithmetic for lambda = 1 over integers below 1/u. Otherwise, per step: the drive's rounding, the
        input's scaling by K (K's rounding and the multiplication), the accumulation, and the realised a's
        distance to lambda times |h|."""
        u = ctx.u
        held = {P: ctx.out[row] + mag[Q] for P, Q, row in self.slots}  # |P| <= |s| + |Q|
        for d, ch in enumerate(self.chans):
            if ch.kind != "state":
                continue
            lam = ch.decay
            steps = max_len if lam == 1 else 1 / (1 - float(lam))
            val[d] = min(mag[d] * steps, held.get(d, np.inf)) if ch.slot == 0 else mag[d]
            exact_val[d] = bool(ints[d]) and lam == 1 and val[d] <= 1 / u
            if not exact_val[d]:
                a_err = 0.0 if lam == 1 else realise_decay(lam, self.dtype)[2]
                own[d] = rho[d] + 3 * u * mag[d] + gamma(2, u) * val[d] + a_err * val[d]


def x_row(ch: Chan, K: float = 1.0) -> tuple[list, float]:
    """The channel's X before the taps: ((index, coefficient) over the stage input, constant); a P channel's
    input is scaled by K."""
    if ch.kind in ("const", "relu"):
        return [], 0.0  # X = the shift (conv / up bias) alone
    scale = K if ch.kind == "state" and ch.slot == 0 else 1.0
    return [(j, scale * float(v)) for j, v in ch.form.terms], scale * float(ch.bias)


def y_row(ch: Chan) -> tuple[list, float]:
    """The channel's gate Y: ((index, coefficient), constant)."""
    if ch.kind == "relu":
        return [(j, float(ch.k * v)) for j, v in ch.form.terms], float(ch.k * ch.bias)
    if ch.kind == "prod":
        fb, bb = ch.gate
        return [(j, float(v)) for j, v in fb.terms], float(bb)
    return [], float(G)


def _x_shift(ch: Chan) -> float:
    return 1.0 if ch.kind == "relu" else float(ch.shift)


def temporal_weights(p: HawkPlan, hidden: int) -> dict[str, np.ndarray]:
    """The RecurrentBlock parameters (float64) of a plan over a stream of width `hidden`."""
    n = max(1, len(p.chans))
    W = {"linear_x.weight": np.zeros((n, hidden)), "linear_x.bias": np.zeros(n),
         "linear_y.weight": np.zeros((n, hidden)), "linear_y.bias": np.zeros(n),
         "conv_1d.weight": np.zeros((n, 1, D_CONV)), "conv_1d.bias": np.zeros(n),
         "rg_lru.recurrent_param": np.full(n, A_ZERO), "rg_lru.input_gate_weight": np.zeros((1, n, n)),
         "rg_lru.input_gate_bias": np.full((1, n), GATE_ON), "rg_lru.recurrent_gate_weight": np.zeros((1, n, n)),
         "rg_lru.recurrent_gate_bias": np.full((1, n), GATE_ON), "linear_out.weight": np.zeros((hidden, n)),
         "linear_out.bias": np.zeros(hidden)}
    first = next((d for d, ch in enumerate(p.chans) if ch.kind == "first"), None)
    decays = {ch.decay: realise_decay(ch.decay, p.dtype) for ch in p.chans if ch.kind == "state"}
    for d, ch in enumerate(p.chans):
        xs, W["linear_x.bias"][d] = x_row(ch, decays[ch.decay][1] if ch.kind == "state" else 1.0)
        put(W["linear_x.weight"][d], xs)
        ys, W["linear_y.bias"][d] = y_row(ch)
        put(W["linear_y.weight"][d], ys)
        for lag, w in ch.taps:
            W["conv_1d.weight"][d, 0, D_CONV - 1 - lag] = float(w)
        W["conv_1d.bias"][d] = _x_shift(ch)
        if ch.kind == "state":
            W["rg_lru.recurrent_param"][d] = decays[ch.decay][0]
            if ch.slot == 0:  # P: off at the first step
                W["rg_lru.input_gate_weight"][0, first, d] = FIRST_OFF
            else:  # Q: on at the first step only
                W["rg_lru.input_gate_bias"][0, d] = GATE_ON + FIRST_OFF / 2
                W["rg_lru.input_gate_weight"][0, first, d] = -FIRST_OFF
    _out(p, W["linear_out.weight"])
    return W


def mlp_weights(p: HawkPlan, hidden: int) -> dict[str, np.ndarray]:
    """The MlpBlock parameters (float64) of a plan with neither lags nor states."""
    n = max(1, len(p.chans))
    W = {"gate_proj.weight": np.zeros((n, hidden)), "gate_proj.bias": np.zeros(n),
         "up_proj.weight": np.zeros((n, hidden)), "up_proj.bias": np.zeros(n),
         "down_proj.weight": np.zeros((hidden, n)), "down_proj.bias": np.zeros(hidden)}
    for d, ch in enumerate(p.chans):
        if ch.kind in ("state", "first") or ch.taps != LAG0:
            raise ValueError("an mlp half hosts neither states nor lags")
        xs, xb = x_row(ch)
        put(W["up_proj.weight"][d], xs)
        W["up_proj.bias"][d] = xb + _x_shift(ch)
        ys, W["gate_proj.bias"][d] = y_row(ch)
        put(W["gate_proj.weight"][d], ys)
    _out(p, W["down_proj.weight"])
    return W


def _out(p: HawkPlan, W: np.ndarray) -> None:
    for r, reads in p.rows.items():
        for d, c in reads.items():
            W[r, d] = float(c / p.gain(p.chans[d]))


def halves(stages) -> list[tuple[int, bool]]:
    """Per stage: (its layer, whether it takes the layer's mlp half). A state stage needs a temporal half;
    the others take the next free half of either kind."""
    out, layer, at_mlp = [], 0, False
    for st in stages:
        if at_mlp and st.kind == "state":
            layer, at_mlp = layer + 1, False
        out.append((layer, at_mlp))
        layer, at_mlp = (layer + 1, False) if at_mlp else (layer, True)
    return out


# ---------------------------------------------------------------------------------------------- backend


class HawkBackend(ChannelBackend):
    name = "hawk"
    summary = ("Linear, products and shift registers exact (gelu gates, integer arithmetic for integer "
               "programs); ReLU as gelu(k w) / k, exact past its margin; integrators exact through the RG-LRU's "
               "float rounding (checked on the device); rotations legalised to a counter and decoder")

    def emit(self, graph: Graph, stack: Stack, facts: Facts | None, dtype: torch.dtype = torch.float64) -> Emitted:
        act = Activation(-math.inf, GELU_EXACT, GELU_EXACT, GELU_SURROGATE, GELU_SLOPE)
        hidden = max(stack.widths() + [1])
        plans = self.plans(stack, facts, lambda lo, hi, w_in, w_out: HawkPlan(lo, hi, act, width_in=w_in,
                                                                                width_out=w_out, dtype=dtype))
        where = halves(stack.stages)
        n_layers = where[-1][0] + 1 if where else 0
        temporal, mlp = [None] * n_layers, [None] * n_layers
        for p, (layer, in_mlp) in zip(plans, where, strict=True):
            (mlp if in_mlp else temporal)[layer] = p
        config = {"hidden": hidden, "input_dim": stack.input_dim,
                  "lru": [max(1, len(p.chans)) if p else 1 for p in temporal],
                  "mlp": [max(1, len(p.chans)) if p else 1 for p in mlp],
                  "slots": [p.slots if p else [] for p in temporal],
                  "integrators": [[d for d, ch in enumerate(p.chans) if ch.kind == "state" and ch.decay == 1]
                                  if p else [] for p in temporal],
                  "hiddens": [hidden] * len(plans), "output_dim": stack.output.b.shape[0], "readout_in": hidden,
                  "probes": {n: r.b.shape[0] for n, r in stack.probes}}
        module = self.build_module(config)
        with torch.no_grad():
            for block, pt, pm in zip(module.layers, temporal, mlp, strict=True):
                for half, p, weights in ((block.temporal_block, pt, temporal_weights),
                                         (block.mlp_block, pm, mlp_weights)):
                    for name, value in (weights(p, hidden).items() if p else ()):
                        half.get_parameter(name).copy_(torch.from_numpy(value))
                    if p is None:  # an empty half adds 0 (its one channel reads nothing)
                        for w in half.parameters():
                            w.zero_()
        last = stack.stages[-1].out.width if stack.stages else stack.input_dim
        module.set_heads(stack, RatArray.from_entries((last, hidden), {(i, i): 1 for i in range(last)}))
        names = [f"layers.{layer}" if in_mlp else f"layers.{layer}.residual" for layer, in_mlp in where]
        places = [Placement(seg.node, name, seg.start, seg.start + seg.dim, RatArray.eye(seg.dim),
                            RatArray.zeros(seg.dim)) for name, st in zip(names, stack.stages, strict=True)
                  for seg in st.out.segments]
        return Emitted(module, config, places, None, {"plans": plans, "max_len": facts.max_len},
                       layer_names=names)

    def build_module(self, config: dict) -> nn.Module:
        return HawkStack(config)

    def permuted(self, module: HawkStack, config: dict, p: torch.Tensor, rng) -> tuple[HawkStack, dict]:
        """The module over the stream permuted by p (config: the new stream's), each half's channels permuted
        too (their rows, conv taps and RG-LRU parameters; the states and integrators follow their channels)."""
        lru = [rng.permutation(n) for n in config["lru"]]  # new channel k is old channel lru[k]
        mlp = [torch.as_tensor(rng.permutation(n)) for n in config["mlp"]]
        inv = [np.argsort(q) for q in lru]
        config = {**config, "slots": [[[int(i[a]), int(i[b]), int(p[row])] for a, b, row in sl]
                                      for i, sl in zip(inv, config["slots"], strict=True)],
                  "integrators": [[int(i[d]) for d in c] for i, c in zip(inv, config["integrators"], strict=True)]}
        if config.get("unbasis"):
            config["unbasis"] = permuted_unbasis(config, p)
        rebuilt = self.build_module(config).to(next(module.parameters()).dtype)
        for old, new, q, q2 in zip(module.layers, rebuilt.layers, lru, mlp, strict=True):
            q = torch.as_tensor(q)
            ot, nt, om, nm = old.temporal_block, new.temporal_block, old.mlp_block, new.mlp_block
            for o, n, rows in ((ot, nt, ("linear_x", "linear_y")), (om, nm, ("gate_proj", "up_proj"))):
                perm = q if o is ot else q2
                for name in rows:  # rows: the channels; columns: the stream
                    src, dst = o.get_submodule(name), n.get_submodule(name)
                    dst.weight.zero_()
                    dst.weight[:, p] = src.weight[perm]
                    dst.bias.copy_(src.bias[perm])
                src, dst = (ot.linear_out, nt.linear_out) if o is ot else (om.down_proj, nm.down_proj)
                dst.weight.zero_()
                dst.weight[p] = src.weight[:, perm]
                dst.bias.zero_()
                dst.bias[p] = src.bias
            nt.conv_1d.weight.copy_(ot.conv_1d.weight[q])
            nt.conv_1d.bias.copy_(ot.conv_1d.bias[q])
            a, b = ot.rg_lru, nt.rg_lru
            b.recurrent_param.copy_(a.recurrent_param[q])
            for g in ("input_gate", "recurrent_gate"):
                b.get_parameter(f"{g}_weight").copy_(a.get_parameter(f"{g}_weight")[:, q][:, :, q])
                b.get_parameter(f"{g}_bias").copy_(a.get_parameter(f"{g}_bias")[:, q])
        return rebuilt, config

    def stream_io(self, module: HawkStack) -> list[tuple[list[nn.Linear], list[nn.Linear]]]:
        out = []
        for b in module.layers:
            t, m = b.temporal_block, b.mlp_block
            out += [([t.linear_x, t.linear_y], [t.linear_out]), ([m.gate_proj, m.up_proj], [m.down_proj])]
        return out

    def stage_io(self, module: HawkStack, stages) -> list[tuple[list[nn.Linear], list[nn.Linear]]]:
        io = self.stream_io(module)
        return [io[2 * layer + in_mlp] for layer, in_mlp in halves(stages)]

    def slot_rows(self, config: dict) -> list[int]:
        return [row for sl in config.get("slots") or [] for _, _, row in sl]

    input_gain = float(G)  # a lin channel: gate G (its X is linear: no shift)

    def with_input_channels(self, module: HawkStack, config: dict, inputs: list, shifts: list[float]):
        """Layer 0's temporal half with one more channel per input coordinate i: X = r_i (lag 0; RG-LRU a = 0 and
        its gates open: h = X), Y = G; linear_out writes (M - I) e_i from it."""
        if not inputs:
            return module, config
        n, d = config["lru"][0], len(inputs)
        config = {**config, "lru": [n + d, *config["lru"][1:]]}
        new = self.build_module(config).to(next(module.parameters()).dtype)
        with torch.no_grad():
            for name, t in module.state_dict().items():
                if not name.startswith("layers.0.temporal_block."):
                    new.get_parameter(name).copy_(t)
            o, m = module.layers[0].temporal_block, new.layers[0].temporal_block
            for name in ("linear_x.weight", "linear_x.bias", "linear_y.weight", "linear_y.bias", "conv_1d.weight",
                         "conv_1d.bias", "rg_lru.recurrent_param"):
                m.get_parameter(name)[:n] = o.get_parameter(name)
            a, b = o.rg_lru, m.rg_lru
            for g in ("input_gate", "recurrent_gate"):
                b.get_parameter(f"{g}_weight").zero_()
                b.get_parameter(f"{g}_weight")[:, :n, :n] = a.get_parameter(f"{g}_weight")
                b.get_parameter(f"{g}_bias")[:, :n] = a.get_parameter(f"{g}_bias")
                b.get_parameter(f"{g}_bias")[:, n:] = GATE_ON
            b.recurrent_param[n:] = A_ZERO
            m.linear_x.weight[n:], m.linear_x.bias[n:], m.linear_y.weight[n:] = 0.0, 0.0, 0.0
            m.linear_y.bias[n:], m.conv_1d.weight[n:], m.conv_1d.bias[n:] = G, 0.0, 0.0
            m.linear_out.weight.zero_()
            m.linear_out.weight[:, :n] = o.linear_out.weight
            m.linear_out.bias.copy_(o.linear_out.bias)
            for j, (i, col) in enumerate(inputs):
                m.linear_x.weight[n + j, i] = 1.0
                m.conv_1d.weight[n + j, 0, D_CONV - 1] = 1.0
                m.linear_out.weight[:, n + j] = torch.from_numpy(col).to(m.linear_out.weight.dtype) / G
        return new, config

    def conditions(self, dtype: torch.dtype) -> tuple[str, ...]:
        return (f"gelu(x) == x for x >= {GELU_EXACT} and gelu(x) == 0 for x <= -{GELU_EXACT} (tanh approximation, "
                f"{dtype}); sigmoid(40) == 1, sigmoid(-1960) == 0, exp(-800) == 0",
                f"exp({LOG_A_ONE[dtype]:.3g}) rounds to 1 (through float32) and "
                f"sqrt(1 - exp({2 * LOG_A_ONE[dtype]:.3g}))"
                f" == {MULT_ONE[dtype]:g} (the integrators; the module checks it on its device)",
                "the scan accumulates in the model's dtype")

    @functools.cache  # noqa: B019 - a module-level singleton; the machine does not change
    def check_platform(self, dtype: torch.dtype) -> tuple[str, ...]:
        big = torch.tensor([GELU_EXACT, 1e6, 2.0**40], dtype=dtype)
        failed = []
        sig = torch.sigmoid(torch.tensor([GATE_ON, GATE_ON + FIRST_OFF], dtype=dtype)).tolist()
        if (not torch.equal(F.gelu(big, approximate="tanh"), big)
                or not torch.equal(F.gelu(-big, approximate="tanh"), torch.zeros_like(big)) or sig != [1.0, 0.0]
                or float(torch.exp(C_LOG_A * F.softplus(torch.tensor(A_ZERO, dtype=dtype)))) != 0):
            failed.append(self.conditions(dtype)[0])
        try:
            realise_decay(Fraction(1), dtype)
        except ValueError:
            failed.append(self.conditions(dtype)[1])
        return tuple(failed)


BACKEND = HawkBackend()
__all__ = ["BACKEND", "HawkStack", "MlpBlock", "RGLRU", "RecurrentBlock", "ResidualBlock"]
