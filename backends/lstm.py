"""LSTM backend: plain torch.nn.LSTM layers (gate order i, f, g, o) plus a torch.nn.Linear read-out.

One nn.LSTM per stage. Every unit runs with f = 0 and i = 1 (saturated), so c_t = g_t and h_t = o_t tanh(g_t):
a value unit has o = 1 and g = tanh(eps v + eps A h_{t-1}) = eps v (small-signal tanh, float-exact); a switch
has o = sigmoid(s) (backends/gated.py).
"""

from __future__ import annotations

import numpy as np
from lsrl.backends.base import LayerStack, PresetInit, Target
from lsrl.backends.gated import SAT, GatedBackend, UnitWeights, expand, recurrence
from torch import nn


class PresetLSTM(PresetInit, nn.LSTM):
    """A vanilla nn.LSTM without the random initialisation (emit or a checkpoint sets every weight)."""


class LSTMStack(LayerStack):
    layer_cls, prefix = PresetLSTM, "lstms"


class LstmBackend(GatedBackend):
    name = "lstm"
    prefix = LSTMStack.prefix
    switch_width = 1
    holds = 0
    target = Target()
    summary = ("Linear, LinState (any A), ReLU (o-gate switch) and products with a factor of few known values "
               "float-exact; other products bounded (sigmoid pair)")

    def layer_weights(self, w: UnitWeights, first: np.ndarray) -> dict[str, np.ndarray]:
        H, n_in = int(first[-1]), w.Wd.shape[1]
        on = np.full(H, float(SAT))
        o_w = expand(w, first, np.where(w.is_switch[:, None], w.Ws, 0.0))
        o_b = np.where(expand(w, first, w.is_switch.astype(float)) > 0, expand(w, first, w.bs), on)
        w_ih = np.concatenate([np.zeros((H, n_in)), np.zeros((H, n_in)), expand(w, first, w.Wd), o_w])
        b_ih = np.concatenate([on, -on, expand(w, first, w.bd), o_b])
        w_hh = np.concatenate([np.zeros((H, H)), np.zeros((H, H)), recurrence(w, first), np.zeros((H, H))])
        b_hh = np.concatenate([np.zeros(H), np.zeros(H), expand(w, first, w.rb), np.zeros(H)])
        return {"weight_ih_l0": w_ih, "bias_ih_l0": b_ih, "weight_hh_l0": w_hh, "bias_hh_l0": b_hh}

    def build_module(self, config: dict) -> nn.Module:
        return LSTMStack(config)


BACKEND = LstmBackend()
__all__ = ["BACKEND", "LSTMStack", "PresetLSTM"]
