"""ReLU-RNN backend: plain torch.nn.RNN(nonlinearity="relu") layers plus a torch.nn.Linear readout.

Every stage of the lowered stack becomes one RNN layer whose units encode values: a value known to be
non-negative is one unit (relu(v) = v), any other value a pair (relu(v), relu(-v)). Each layer's output is
read through a decoding matrix Dec (values = Dec @ units) that folds into the next layer's input weights.
"""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import torch
from lsrl.backends.base import Emitted, Placement, Promise, ValueFacts, as_tensor, rounding_tol
from torch import nn

from lsrl.diagnostics import Note, error
from lsrl.ir.graph import Graph
from lsrl.lowering.stack import GateStage, Layout, MLPStage, Stack, StateStage


def _z(*shape: int) -> np.ndarray:
    return np.full(shape, Fraction(0), dtype=object)


class _Layer:
    """Weights of one nn.RNN layer under construction (exact entries)."""

    def __init__(self, n_in: int):
        self.n_in = n_in
        self.w_ih: list[np.ndarray] = []  # one row per unit
        self.bias: list = []
        self.rec: list[tuple[int, np.ndarray]] = []  # (unit, row over this layer's *values*): recurrence
        self.unit_rec: list[tuple[int, int, object]] = []  # (unit, source unit, coefficient)
        self.dec_cols: list[np.ndarray] = []  # per unit: its column of Dec (over output values)

    def unit(self, w: np.ndarray, b, dec: np.ndarray) -> int:
        self.w_ih.append(w)
        self.bias.append(b)
        self.dec_cols.append(dec)
        return len(self.w_ih) - 1

    @property
    def dec(self) -> np.ndarray:
        return np.stack(self.dec_cols, axis=1) if self.dec_cols else _z(0, 0)


def _value_units(layer: _Layer, w: np.ndarray, b, row: int, n_values: int, nonneg: bool) -> list[int]:
    """Units carrying value `row` = w @ h_in + b: one unit if it is never negative, else a +/- pair."""
    dec = _z(n_values)
    dec[row] = 1
    units = [layer.unit(w, b, dec)]
    if not nonneg:
        units.append(layer.unit(-w, -b, -dec))
    return units


class ReLURNNStack(nn.Module):
    """forward(x[B, T, d_in]) -> y[B, T, d_out]; each layer is a vanilla single-layer nn.RNN."""

    def __init__(self, config: dict):
        super().__init__()
        self.rnns = nn.ModuleList(
            nn.RNN(i, h, num_layers=1, nonlinearity="relu", batch_first=True)
            for i, h in zip(config["inputs"], config["hiddens"], strict=True))
        self.readout = nn.Linear(config["readout_in"], config["output_dim"])
        self.probe_names = list(config["probes"])
        self.probe_heads = nn.ModuleList(nn.Linear(config["readout_in"], d) for d in config["probes"].values())

    def forward(self, x: torch.Tensor, probes: bool = False):
        h = x.to(self.readout.weight.dtype)
        for rnn in self.rnns:
            h, _ = rnn(h)
        y = self.readout(h)
        if not probes:
            return y
        return y, {n: head(h) for n, head in zip(self.probe_names, self.probe_heads, strict=True)}


class RnnBackend:
    name = "rnn"
    exact_constructs = ("Linear, ReLU, LinState (any A, any init) exactly; Multi only when one factor is "
                        "provably 0/1 and the other provably bounded (ReLU if-else with the smallest safe L)")

    def emit(self, graph: Graph, stack: Stack, facts: ValueFacts | None) -> Emitted:
        if facts is None:
            raise ValueError("the rnn backend needs range facts")
        dec = np.eye(stack.input_dim, dtype=np.int64).astype(object)  # layer 0 reads raw x
        layers, placements = [], []
        for i, st in enumerate(stack.stages):
            layer, places = _STAGE[st.kind](graph, st, dec, facts)
            layers.append(layer)
            placements += [Placement(n, f"rnns.{i}", a, b, enc) for n, a, b, enc in places]
            dec = layer.dec
        config = {"inputs": [stack.input_dim] + [len(la.w_ih) for la in layers[:-1]],
                  "hiddens": [len(la.w_ih) for la in layers], "readout_in": dec.shape[1],
                  "output_dim": stack.output.b.shape[0], "probes": {n: r.b.shape[0] for n, r in stack.probes}}
        module = self.build_module(config)
        with torch.no_grad():
            for rnn, layer in zip(module.rnns, layers, strict=True):
                rnn.weight_ih_l0.copy_(as_tensor(np.stack(layer.w_ih)))
                rnn.bias_ih_l0.copy_(as_tensor(np.array(layer.bias, dtype=object)))
                rnn.bias_hh_l0.zero_()
                rnn.weight_hh_l0.copy_(as_tensor(_recurrent(layer)))
            for head, r in [(module.readout, stack.output)] + [
                    (h, r) for h, (_, r) in zip(module.probe_heads, stack.probes, strict=True)]:
                head.weight.copy_(as_tensor(r.W.data @ dec))
                head.bias.copy_(as_tensor(r.b))
        return Emitted(module, config, placements)

    def build_module(self, config: dict) -> nn.Module:
        return ReLURNNStack(config).double()

    def promise(self, dtype: torch.dtype, stack: Stack) -> Promise:
        return Promise(True, rounding_tol(dtype, stack, 2**10),
                       "exact in real arithmetic; gates rely on proven 0/1 factors and bounds; float rounding only")


def _recurrent(layer: _Layer) -> np.ndarray:
    """W_hh: a state unit's row over values times this layer's Dec, plus direct unit-to-unit terms."""
    n = len(layer.w_ih)
    w = _z(n, n)
    dec = layer.dec
    for unit, row in layer.rec:
        w[unit] += row @ dec
    for unit, src, coef in layer.unit_rec:
        w[unit, src] += coef
    return w


def _state_layer(graph: Graph, st: StateStage, dec_in: np.ndarray, facts: ValueFacts):
    layer, places = _Layer(dec_in.shape[1]), []
    n_vals = st.out.width
    B = st.B.data @ dec_in
    # nn.RNN starts from h = 0, so s_0 = init is injected as A @ init at t = 1 through a constant unit k
    # (k_0 = 0, k_t = 1): pre += A init (1 - k_{t-1}).
    a_init = st.A.data @ st.init.data
    const = None
    if any(v != 0 for v in a_init):
        const = layer.unit(_z(dec_in.shape[1]), Fraction(1), _z(n_vals))
    for seg in st.out.segments:
        nonneg = facts.nonnegative(seg.node)
        first = len(layer.w_ih)
        for r in range(seg.start, seg.start + seg.dim):
            units = _value_units(layer, B[r], st.bias.data[r] + a_init[r], r, n_vals, nonneg)
            for sign, u in zip((1, -1), units, strict=False):
                if any(v != 0 for v in st.A.data[r]):
                    layer.rec.append((u, sign * st.A.data[r]))
                if const is not None and a_init[r] != 0:
                    layer.unit_rec.append((u, const, -sign * a_init[r]))
        places.append((seg.node, first, len(layer.w_ih), "relu" if nonneg else "pair"))
    return layer, places


def _mlp_layer(graph: Graph, st: MLPStage, dec_in: np.ndarray, facts: ValueFacts):
    layer, places = _Layer(dec_in.shape[1]), []
    n_vals = st.out.width
    C, E = st.C.data @ dec_in, st.E.data @ dec_in
    hidden_unit = {}
    for k in range(E.shape[0]):  # hidden ReLU units: decode through D
        hidden_unit[k] = layer.unit(E[k], st.e.data[k], st.D.data[:, k].copy())
    for seg in st.out.segments:
        rows = range(seg.start, seg.start + seg.dim)
        if all(all(v == 0 for v in C[r]) and st.c.data[r] == 0 for r in rows):
            cols = [k for k in range(E.shape[0]) if any(st.D.data[r, k] != 0 for r in rows)]
            places.append((seg.node, hidden_unit[cols[0]], hidden_unit[cols[-1]] + 1, "relu"))
            continue
        first, nonneg = len(layer.w_ih), facts.nonnegative(seg.node)
        for r in rows:
            _value_units(layer, C[r], st.c.data[r], r, n_vals, nonneg)
        places.append((seg.node, first, len(layer.w_ih), "relu" if nonneg else "pair"))
    return layer, places


def _gate_layer(graph: Graph, st: GateStage, dec_in: np.ndarray, facts: ValueFacts):
    layer, places = _Layer(dec_in.shape[1]), []
    n_vals = st.out.width
    P, U, V = st.P.data @ dec_in, st.U.data @ dec_in, st.V.data @ dec_in
    gate_units: dict[int, list[int]] = {}
    for j, node in enumerate(st.gates):
        a, b = graph[node].args
        if facts.is_boolean(a):
            flag, fb, val, vb, other = U[j], st.u.data[j], V[j], st.v.data[j], b
        elif facts.is_boolean(b):
            flag, fb, val, vb, other = V[j], st.v.data[j], U[j], st.u.data[j], a
        else:
            raise _inexact_gate(graph, node)
        L = _safe_big(facts.bound(other))
        dec = st.Q.data[:, j].copy()
        # b*v = relu(v - L(1-b)) - relu(-v - L(1-b)): exact when b is 0/1 and |v| <= L
        u1 = layer.unit(val + L * flag, vb - L + L * fb, dec)
        u2 = layer.unit(-val + L * flag, -vb - L + L * fb, -dec)
        gate_units.setdefault(node, []).extend([u1, u2])
    for seg in st.out.segments:
        if seg.node in gate_units:
            us = gate_units[seg.node]
            places.append((seg.node, min(us), max(us) + 1, "gate"))
            continue
        first, nonneg = len(layer.w_ih), facts.nonnegative(seg.node)
        for r in range(seg.start, seg.start + seg.dim):
            _value_units(layer, P[r], Fraction(0), r, n_vals, nonneg)
        places.append((seg.node, first, len(layer.w_ih), "relu" if nonneg else "pair"))
    return layer, places


def _safe_big(bound: float) -> Fraction:
    """The smallest power of two >= the proven bound (>= 1): exact in floats, never below the bound."""
    if not np.isfinite(bound):
        raise ValueError("unbounded")
    p = Fraction(1)
    while p < bound:
        p *= 2
    return p


def _inexact_gate(graph: Graph, node: int):
    n = graph[node]
    a, b = (graph[x] for x in n.args)
    names = " and ".join(f"`{x.label}`" if x.label else "an unnamed value" for x in (a, b))
    return error("E0701", f"the rnn backend cannot realise this product exactly: neither factor ({names}) is "
                 "provably 0/1", n.span,
                 "use --backend lrnn (exact gates), make one factor a boolean (e.g. step/larger/eq/and), or "
                 "write the conditional with ifelse(c, a, b, big) (ReLU only)",
                 (Note("a ReLU network realises u*v exactly only when one factor is 0 or 1"),))


_STAGE = {"state": _state_layer, "mlp": _mlp_layer, "gate": _gate_layer}
BACKEND = RnnBackend()
__all__ = ["BACKEND", "ReLURNNStack", "Layout"]
