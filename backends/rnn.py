"""ReLU-RNN backend: plain torch.nn.RNN(nonlinearity="relu") layers plus a torch.nn.Linear readout.

Every stage of the lowered stack becomes one RNN layer whose units encode values: a value known to be
non-negative is one unit (relu(v) = v), any other value a pair (relu(v), relu(-v)). Each layer's output is
read through a decoding matrix Dec (values = Dec @ units) that folds into the next layer's input weights.
"""

from __future__ import annotations

import numpy as np
import torch
from lsrl.backends.base import Emitted, LayerStack, PresetInit, Target, abs_np, as_tensor, layers_config, placements
from torch import nn

from lsrl.cached import cached
from lsrl.diagnostics import SOURCES, Note, error
from lsrl.guarantee.facts import Facts
from lsrl.guarantee.propagate import Context, StageErrors, gamma, integer_factors, rounding
from lsrl.ir.graph import Graph
from lsrl.ir.rational import RatArray, int_dtype
from lsrl.ir.recurrence import coupled_components
from lsrl.lowering.bounds import stack_bounds
from lsrl.lowering.stack import GateStage, Layout, MLPStage, Stack, StateStage


class _Layer:
    """One nn.RNN layer under construction. Every unit is a small integer combination of `src` rows (the
    layer's candidate pre-activations over its input units) and decodes through a signed `basis` column;
    the weights then come out of a few exact matrix products."""

    def __init__(self, src: RatArray, src_bias: RatArray, basis: RatArray):
        self.src, self.src_bias, self.basis = src, src_bias, basis
        self._mix: tuple[list[int], list[int], list[int]] = ([], [], [])  # (unit, src row, integer coefficient)
        self.extra: list[int] = []  # per unit: bias added to the combination's
        self.columns: list[int] = []  # per unit: the basis column it decodes through, -1 if it reads as 0
        self._signs: list[int] = []  # per unit: the sign of that column

    def unit(self, combo: dict[int, int], column: int = -1, sign: int = 1, extra: int = 0) -> int:
        u = len(self.columns)
        for r, c in combo.items():
            self._add(u, r, c)
        self.extra.append(extra)
        self.columns.append(column)
        self._signs.append(sign)
        return u

    def values(self, start: int, dim: int, nonneg: bool) -> None:
        """Units carrying values `start..start+dim` (= those src rows): one per value never negative, else a
        +/- pair."""
        signs = (1,) if nonneg else (1, -1)
        rows = [r for r in range(start, start + dim) for _ in signs]
        us, rs, cs = self._mix
        us.extend(range(len(self.columns), len(self.columns) + len(rows)))
        rs.extend(rows)
        cs.extend(signs * dim)
        self.extra.extend([0] * len(rows))
        self.columns.extend(rows)
        self._signs.extend(signs * dim)

    def _add(self, unit: int, row: int, coef: int) -> None:
        us, rs, cs = self._mix
        us.append(unit)
        rs.append(row)
        cs.append(coef)

    def __len__(self) -> int:
        return len(self.columns)

    def mix(self) -> RatArray:
        """M (units x src rows): W_ih = M @ src."""
        us, rs, cs = self._mix
        m = np.zeros((len(self), self.src.shape[0]), dtype=int_dtype(cs))
        m[us, rs] = cs  # a unit's combination names each row once
        return RatArray.of(m)

    @cached
    def decoder(self) -> RatArray:
        """Dec (values x units): the layer's values = Dec @ units; unit u's column is its sign x its basis
        column (0 for a unit that reads as 0)."""
        if not self.basis.shape[1]:
            return RatArray.zeros(self.basis.shape[0], len(self))
        cols = np.array(self.columns, dtype=np.intp)
        signs = np.where(cols >= 0, np.array(self._signs, dtype=np.int64), 0)
        return RatArray(self.basis.num[:, np.maximum(cols, 0)] * signs, self.basis.den)._reduced()

    def input_weights(self) -> tuple[RatArray, RatArray]:
        m = self.mix()
        bias = m @ self.src_bias
        if any(self.extra):  # gate units and a state layer's constant unit
            bias = bias + RatArray.of(np.array(self.extra, dtype=int_dtype(self.extra)))
        return m @ self.src, bias


class PresetRNN(PresetInit, nn.RNN):
    """A vanilla nn.RNN without the random initialisation, whose forward runs a single-layer ReLU layer by
    parts (see `forward`): the same result as nn.RNN's, computed faster."""

    def forward(self, input, hx=None):
        """What nn.RNN.forward computes from a zero initial state, by parts. Units that no W_hh entry couples
        (all of an MLP or gate stage, most of a state stage) depend on the current input only: one matmul and
        ReLU over all steps. The sequential loop runs over the few coupled units alone (their W_hh columns
        outside them are 0, by their definition). The terms left out are exact zeros, so this differs from
        the vanilla module only by the input matmul's summation order over a different memory layout (a few
        ulp, and not at all where the arithmetic is certified exact). nn.RNN.forward runs instead when given
        an initial state, input that is not a batch-first 3-D tensor, a configuration other than one
        unidirectional biased ReLU layer, or a densely coupled layer (most units coupled)."""
        if (hx is not None or not isinstance(input, torch.Tensor) or input.dim() != 3 or not self.batch_first
                or self.num_layers != 1 or self.bidirectional or not self.bias or self.nonlinearity != "relu"
                or self.proj_size):
            return super().forward(input, hx)
        coupled = coupled_components(self.weight_hh_l0)
        if 2 * len(coupled) > self.hidden_size:
            return super().forward(input)
        out = _by_parts(self, input, coupled)
        h_n = out[:, -1].unsqueeze(0).clone() if input.shape[1] else out.new_zeros(1, input.shape[0], out.shape[2])
        return out, h_n


def _by_parts(rnn: nn.RNN, h: torch.Tensor, coupled: list[int]) -> torch.Tensor:
    """The layer's output (batch, time, hidden) from h_0 = 0: the uncoupled units in one pass, then the step
    loop over the `coupled` ones."""
    pre = nn.functional.linear(h, rnn.weight_ih_l0, rnn.bias_ih_l0 + rnn.bias_hh_l0)
    if not len(coupled) or not h.shape[1]:
        return pre.relu_()
    out = pre.relu()
    w_c, pre_c = rnn.weight_hh_l0[coupled][:, coupled].T, pre[:, :, coupled]
    h_c = pre.new_zeros(h.shape[0], len(coupled))
    steps = []
    for t in range(h.shape[1]):
        h_c = torch.addmm(pre_c[:, t], h_c, w_c).relu_()
        steps.append(h_c)
    out[:, :, coupled] = torch.stack(steps, 1)
    return out


class ReLURNNStack(LayerStack):
    layer_cls, prefix, layer_kwargs = PresetRNN, "rnns", {"nonlinearity": "relu"}


class RnnBackend:
    name = "rnn"
    prefix = ReLURNNStack.prefix
    target = Target()
    summary = ("Linear, ReLU, LinState (any A, any init) exactly; Multi only when one factor is provably 0/1 "
               "and the other provably bounded (ReLU if-else with the smallest safe L)")

    def emit(self, graph: Graph, stack: Stack, facts: Facts | None, dtype: torch.dtype = torch.float64) -> Emitted:
        if facts is None:
            raise ValueError("the rnn backend needs range facts")
        dec = RatArray.eye(stack.input_dim)  # layer 0 reads raw x
        weights, places, columns, gates = [], [], [], {}
        for i, st in enumerate(stack.stages):
            layer, w_hh, consts = _STAGE[st.kind](graph, st, dec, facts)
            if consts:
                gates[i] = consts
            columns.append(layer.columns)
            weights.append((*layer.input_weights(), w_hh))  # w_hh None: no recurrence (MLP and gate layers)
            places += placements(f"rnns.{i}", layer.decoder, st.out)
            dec = layer.decoder
        hiddens = [w_ih.shape[0] for w_ih, _, _ in weights]
        config = layers_config(stack, hiddens)
        module = self.build_module(config)
        with torch.no_grad():
            for rnn, (w_ih, b, w_hh) in zip(module.rnns, weights, strict=True):
                rnn.weight_ih_l0.copy_(as_tensor(w_ih))
                rnn.bias_ih_l0.copy_(as_tensor(b))
                rnn.bias_hh_l0.zero_()
                if w_hh is None:
                    rnn.weight_hh_l0.zero_()
                else:
                    rnn.weight_hh_l0.copy_(as_tensor(w_hh))
        module.set_heads(stack, dec)
        return Emitted(module, config, places, columns, {"gates": gates})

    def build_module(self, config: dict) -> nn.Module:
        return ReLURNNStack(config)

    def stage_errors(self, emitted: Emitted, i: int, stage, ctx: Context) -> StageErrors:
        """The stack's rounding, plus the if-else gates': their pre-activations v - L(1 - b) sum terms up to
        2L + |v|, and a flag's error reaches the product multiplied by L (not by |v|)."""
        se = rounding(stage, ctx)
        if stage.kind != "gate":
            return se
        flag_is_u, big = (np.array(v) for v in zip(*emitted.constants["gates"][i], strict=True))
        fu = np.abs(stage.U.f64) @ ctx.h + np.abs(stage.u.f64)
        fv = np.abs(stage.V.f64) @ ctx.h + np.abs(stage.v.f64)
        val = np.where(flag_is_u, fv, fu)
        # v - L(1 - b) is integer arithmetic, exact in the dtype, when both factors are and it stays below 1/u
        exact = integer_factors(stage, ctx) & (2 * big + val <= 1 / ctx.u)
        se.inner = se.inner + np.where(exact, 0.0, gamma(ctx.fan_in + 1, ctx.u) * (2 * big + val))
        se.gain = np.maximum(1.0, big / np.maximum(val, 1e-300))
        # a flag exactly 0 leaves relu(v - L) - relu(-v - L): exactly 0 while |v| (error included) <= L
        se.zero_products = np.where(val <= big, np.where(flag_is_u, 1, 2), 0)
        return se

    def conditions(self, dtype: torch.dtype) -> tuple[str, ...]:
        return ()

    def check_platform(self, dtype: torch.dtype) -> tuple[str, ...]:
        return ()

    def sum_bound(self, stack: Stack, emitted: Emitted, magnitudes, x_bound: float) -> float:
        # a unit holds relu(+-c) of the basis column c it decodes (value, MLP hidden unit or gate product;
        # a gate unit is 0 when its flag is), so |unit| <= that column's bound; the constant unit is 0/1
        # units scaled by powers of two (lsrl.interpretability.obfuscate) hold a times that: their sums are
        # multiples of a, so the bound that matters is the sum divided by a, the unscaled model's
        stages, _ = stack_bounds(stack, magnitudes, x_bound)
        mod, u_in, worst = emitted.module, np.full(stack.input_dim, float(x_bound)), 0.0
        scales = emitted.constants.get("unit_scales") or [None] * len(mod.rnns)
        for rnn, cols, b, a in zip(mod.rnns, emitted.unit_columns, stages, scales, strict=True):
            a = np.ones(len(cols)) if a is None else np.asarray(a)
            u = a * np.array([b.basis[c] if c >= 0 else 0.0 if c == -2 else 1.0 for c in cols])
            pre = (abs_np(rnn.weight_ih_l0) @ u_in + abs_np(rnn.bias_ih_l0) + abs_np(rnn.weight_hh_l0) @ u
                   + abs_np(rnn.bias_hh_l0)) / a
            worst, u_in = max(worst, float(pre.max(initial=0.0))), u
        for head in [mod.readout, *mod.probe_heads]:
            worst = max(worst, float((abs_np(head.weight) @ u_in + abs_np(head.bias)).max(initial=0.0)))
        return worst


def _state_layer(graph: Graph, st: StateStage, dec_in: RatArray, facts: Facts):
    n_vals = st.out.width
    A, a_init = st.A.rat, st.A.rat @ st.init.rat
    layer = _Layer(st.B.rat @ dec_in, st.bias.rat + a_init, RatArray.eye(n_vals))
    # nn.RNN starts from h = 0, so s_0 = init is injected as A @ init at t = 1 through a constant unit k
    # (k_0 = 0, k_t = 1): pre_t = B h_t + bias + A init (1 - k_{t-1}) + A s_{t-1}.
    const = layer.unit({}, extra=1) if a_init.num.any() else None
    for seg in st.out.segments:
        _values(layer, seg, facts)
    # A unit holding sign * value r feeds back sign * (A[r] @ values - a_init[r] k): W_hh = Dec^T (A Dec - a_init e_k^T)
    feedback = A @ layer.decoder
    if const is not None:
        e_k = np.zeros((1, len(layer)), dtype=np.int64)
        e_k[0, const] = 1
        feedback = feedback + (-a_init[:, None]) @ RatArray.of(e_k)
    return layer, layer.decoder.T @ feedback, None


def _mlp_layer(graph: Graph, st: MLPStage, dec_in: RatArray, facts: Facts):
    n_vals, n_hidden = st.out.width, st.E.shape[0]
    layer = _Layer(RatArray.concat([st.C.rat, st.E.rat]) @ dec_in,
                   RatArray.concat([st.c.rat, st.e.rat]),
                   RatArray.concat([RatArray.eye(n_vals), st.D.rat], axis=1))
    for k in range(n_hidden):  # decode through D
        layer.unit({n_vals + k: 1}, n_vals + k)
    direct = ((layer.src.num[:n_vals] != 0).any(axis=1) | (layer.src_bias.num[:n_vals] != 0)).tolist()
    for seg in st.out.segments:
        if any(direct[seg.start:seg.start + seg.dim]):  # a purely hidden value is read from its ReLU units
            _values(layer, seg, facts)
    return layer, None, None


def _gate_layer(graph: Graph, st: GateStage, dec_in: RatArray, facts: Facts):
    n_vals, n_gates = st.out.width, len(st.gates)
    layer = _Layer(RatArray.concat([m.rat for m in (st.P, st.U, st.V)]) @ dec_in,
                   RatArray.concat([RatArray.zeros(n_vals), st.u.rat, st.v.rat]),
                   RatArray.concat([RatArray.eye(n_vals), st.Q.rat], axis=1))
    gated: set[int] = set()
    consts = []  # per product row: (whether the flag is the first factor, L)
    for j, node in enumerate(st.gates):
        a, b = graph[node].args
        u_row, v_row = n_vals + j, n_vals + n_gates + j  # rows of the factors (U m + u) and (V m + v)
        if facts.is_boolean(a):
            flag, val, other = u_row, v_row, b
        elif facts.is_boolean(b):
            flag, val, other = v_row, u_row, a
        else:
            raise _inexact_gate(graph, node)
        L = _safe_big(facts.bound(other, "the rnn backend's gate constant"))
        consts.append((flag == u_row, L))
        # b*v = relu(v - L(1-b)) - relu(-v - L(1-b)): exact when b is 0/1 and |v| <= L
        for s in (1, -1):
            layer.unit({val: s, flag: L}, n_vals + j, s, extra=-L)
        gated.add(node)
    for seg in st.out.segments:
        if seg.node not in gated:
            _values(layer, seg, facts)
    return layer, None, consts


def _values(layer: _Layer, seg, facts: Facts) -> None:
    """Units for a segment's values (src rows seg.start..): one per value never negative, else a pair."""
    layer.values(seg.start, seg.dim, facts.nonnegative(seg.node))


def _safe_big(bound: float) -> int:
    """The smallest power of two >= the proven bound (>= 1): exact in floats, never below the bound."""
    if not np.isfinite(bound):
        raise ValueError("unbounded")
    p = 1
    while p < bound:
        p *= 2
    return p


def _inexact_gate(graph: Graph, node: int):
    n = graph[node]
    a, b = (graph[x] for x in n.args)
    names = " and ".join(f"`{x.label or SOURCES.span_text(x.span) or f'%{x.id}'}`" for x in (a, b))
    return error("E0701", f"the rnn backend cannot realise this product exactly: neither factor ({names}) is "
                 "provably 0/1", n.span,
                 "use --backend lrnn (exact gates), make one factor a boolean (e.g. step/larger/eq/and), or "
                 "write the conditional with ifelse(c, a, b, big) (ReLU only)",
                 (Note("a ReLU network realises u*v exactly only when one factor is 0 or 1"),))


_STAGE = {"state": _state_layer, "mlp": _mlp_layer, "gate": _gate_layer}
BACKEND = RnnBackend()
__all__ = ["BACKEND", "PresetRNN", "ReLURNNStack", "Layout"]
