"""GRU backend: plain torch.nn.GRU layers (gate order r, z, n) plus a torch.nn.Linear read-out.

One nn.GRU per stage; h_t = (1 - z) n + z h_{t-1} with n = tanh(W_in x + b_in + r (W_hn h_{t-1} + b_hn)).
A value unit has z = 0, r = 1 and n = tanh(eps v + eps A h_{t-1}) = eps v (small-signal tanh, float-exact).
A switch sigmoid(s) eps v is two units: a with z = sigmoid(-s), n = eps v (holding h_a' when off), and c with
z = 0, r = sigmoid(-s), n = tanh(r h_a') (the held part): h_a - h_c = sigmoid(s) eps v (backends/gated.py).
A delayed twin has z = 0, r = sigmoid(s_{t-1}) read from the layer's own previous units, n = tanh(r eps v_{t-1}).
"""

from __future__ import annotations

import numpy as np
from lsrl.backends.base import LayerStack, PresetInit, Target
from lsrl.backends.gated import SAT, GatedBackend, UnitWeights, expand, recurrence
from torch import nn


class PresetGRU(PresetInit, nn.GRU):
    """A vanilla nn.GRU without the random initialisation (emit or a checkpoint sets every weight)."""


class GRUStack(LayerStack):
    layer_cls, prefix = PresetGRU, "grus"


class GruBackend(GatedBackend):
    name = "gru"
    prefix = GRUStack.prefix
    switch_width = 2
    holds = 1
    target = Target()
    summary = ("Linear, LinState (any A), ReLU (update-gate switch pairs) and products with a factor of few known "
               "values float-exact; other products bounded (sigmoid pair)")

    def layer_weights(self, w: UnitWeights, first: np.ndarray) -> dict[str, np.ndarray]:
        H, n_in = int(first[-1]), w.Wd.shape[1]
        a, sw = first[:-1], w.is_switch
        c = a[sw] + 1  # the copy unit of each switch
        r_w, z_w = np.zeros((H, n_in)), np.zeros((H, n_in))
        r_b, z_b = np.full(H, float(SAT)), np.full(H, -float(SAT))
        z_w[a[sw]], z_b[a[sw]] = -w.Ws[sw], -w.bs[sw]  # a: z = sigmoid(-s)
        r_w[c], r_b[c] = -w.Ws[sw], -w.bs[sw]  # c: r = sigmoid(-s), z = 0
        w_hn = recurrence(w, first)
        w_hn[c, a[sw]] = 1.0  # c reads h_a'
        d = a[w.gated]  # delayed twins: r = sigmoid(G h' + gb) scales their recurrence
        w_hr = np.zeros((H, H))
        w_hr[np.ix_(d, a)], r_b[d] = w.G[w.gated], w.gb[w.gated]
        w_ih = np.concatenate([r_w, z_w, expand(w, first, w.Wd)])
        b_ih = np.concatenate([r_b, z_b, expand(w, first, w.bd)])
        w_hh = np.concatenate([w_hr, np.zeros((H, H)), w_hn])
        b_hh = np.concatenate([np.zeros(H), np.zeros(H), expand(w, first, w.rb)])
        return {"weight_ih_l0": w_ih, "bias_ih_l0": b_ih, "weight_hh_l0": w_hh, "bias_hh_l0": b_hh}

    def build_module(self, config: dict) -> nn.Module:
        return GRUStack(config)


BACKEND = GruBackend()
__all__ = ["BACKEND", "GRUStack", "PresetGRU"]
