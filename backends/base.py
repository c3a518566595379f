"""The backend interface: a target description, and how a backend turns a lowered stack into a torch module
with real parameter names, places every value in it, and states the errors of its constructions."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import numpy as np
import torch

from lsrl.guarantee.facts import Facts
from lsrl.guarantee.propagate import Context, StageErrors
from lsrl.ir.graph import Graph
from lsrl.ir.rational import RatArray
from lsrl.lowering.stack import Layout, Stack
from lsrl.lowering.template import STATE_MLP_GATE, Template

# the range of a ReLU surrogate's slope d/dw [act(k w) / k] over all w (rounded outwards): silu (mamba's
# channels; a GRU switch w sigmoid(k w) is silu(k w) / k) and exact gelu (hawk's); the error analysis passes an
# input's error through a surrogate near its kink at these slopes (lsrl.guarantee.relu_groups.Group)
SILU_SLOPE = (-0.09984, 1.09984)
GELU_SLOPE = (-0.12891, 1.12891)


@dataclass(frozen=True)
class Target:
    """What an architecture can host. `template`: the stage kinds one layer holds, in order (the schedule
    places every value in the earliest phase that hosts its kind); `transitions`: which state matrices A its
    recurrences realise ("any", or "diagonal01": real diagonal in [0, 1], as in Mamba and Hawk, whose
    programs must be legalised first); `needs_facts`: whether its constructions need range analysis."""

    template: Template = STATE_MLP_GATE
    transitions: str = "any"
    needs_facts: bool = True


@dataclass(frozen=True)
class Placement:
    """Where an IR value lives: units [start, stop) of layer `layer` (the parameter-name prefix of the
    module whose output holds them, e.g. "rnns.2"), read as value = decode @ units[start:stop] + offset
    (exact rationals: pairs, scaled encodings and sums of units are all just matrices)."""

    node: int
    layer: str
    start: int
    stop: int
    decode: RatArray  # (node dim) x (stop - start)
    offset: RatArray  # (node dim,)


def placements(layer: str, decoder: RatArray, layout: Layout) -> list[Placement]:
    """The placement of every segment of `layout` in a layer whose values are `decoder @ units`: the
    smallest unit range its rows read."""
    out = []
    for seg in layout.segments:
        rows = decoder[seg.start:seg.start + seg.dim]
        cols = np.flatnonzero((rows.num != 0).any(axis=0))
        a, b = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 0)
        out.append(Placement(seg.node, layer, a, b, rows[:, a:b]._reduced(), RatArray.zeros(seg.dim)))
    return out


def layers_config(stack: Stack, hiddens: list[int]) -> dict:
    """The module config of a stack of single-layer torch RNN modules (one per stage, widths `hiddens`) and
    the read-out heads on the last one."""
    return {"inputs": ([stack.input_dim] + hiddens)[:len(hiddens)], "hiddens": hiddens,
            "readout_in": hiddens[-1] if hiddens else stack.input_dim, "output_dim": stack.output.b.shape[0],
            "probes": {n: r.b.shape[0] for n, r in stack.probes}}


@dataclass
class Emitted:
    module: torch.nn.Module
    config: dict  # JSON-able: enough to rebuild the module with `Backend.build_module`
    placements: list[Placement] = field(default_factory=list)
    # per layer, per unit: the column of the stage's value/inner basis the unit decodes (-1: a constant unit);
    # for backends whose units are not the stack's own values (rnn), so bounds can follow them
    unit_columns: list[list[int]] | None = None
    constants: dict = field(default_factory=dict)  # what the backend chose (scales, sharpness), for its errors
    # per stage: the submodule (dotted path) whose output holds the stage's values; None: "{prefix}.{i}"
    layer_names: list[str] | None = None

    def stage_layers(self, prefix: str, n: int) -> list[str]:
        return list(self.layer_names) if self.layer_names is not None else [f"{prefix}.{i}" for i in range(n)]


class Backend(Protocol):
    name: str
    prefix: str  # the module attribute (a ModuleList) holding its layers: parameter names start "{prefix}.{i}."
    target: Target
    summary: str  # one line for docs and `lsrl verify`: what it realises and how exactly

    def emit(self, graph: Graph, stack: Stack, facts: Facts | None, dtype: torch.dtype) -> Emitted:
        """The weights as a float64 module (the driver casts it to `dtype`, which constants may depend on)."""
        ...

    def build_module(self, config: dict) -> torch.nn.Module: ...

    def stage_errors(self, emitted: Emitted, i: int, stage, ctx: Context) -> StageErrors:
        """The error the realisation of stage `i` adds per step, given exact inputs (lsrl.guarantee.propagate)."""
        ...

    def conditions(self, dtype: torch.dtype) -> tuple[str, ...]:
        """Platform facts the promise relies on (beyond IEEE arithmetic)."""
        ...

    def check_platform(self, dtype: torch.dtype) -> tuple[str, ...]:
        """The conditions that fail on this machine (checked by `lsrl verify` before it passes a model)."""
        ...

    def sum_bound(self, stack: Stack, emitted: Emitted, magnitudes, x_bound: float) -> float:
        """The largest |partial sum| (or product) the emitted module's arithmetic can reach, for inputs with
        |x| <= x_bound and IR values bounded by `magnitudes(node)`; inf or nan where unknown or where the
        module's arithmetic is not integer arithmetic (see lsrl.guarantee.certify)."""
        ...


def linear_basis(backend) -> str | None:
    """What an invertible change of basis of linear (not elementwise-nonlinear) coordinates acts on in this
    backend's models (lsrl.interpretability.obfuscate), or None where there is none: a backend that has them
    sets `linear_basis` (a description) and provides `basis_layers(config)` (per basis: width, pinned columns,
    pinned rows), `rebased(module, config, bases, mul)` and `basis_sums(compiled, module, bases, contexts)`.
    rnn, gru and lstm have none: every hidden unit passes through a ReLU or a gate, so only permutations and
    (rnn) positive scalings preserve the function."""
    return getattr(backend, "linear_basis", None)


class PresetInit:
    """Mixin for a vanilla torch layer that skips the random initialisation: emit or a checkpoint sets every
    weight, and the init is about half of what building a small model costs."""

    # nn.RNNBase.__setattr__ asks hasattr(self, "_flat_weights_names") on every attribute __init__ sets, which
    # raises and catches an AttributeError until __init__ assigns the list; this empty default answers at
    # once and is shadowed by that list (construction ~20% faster, nothing else changes)
    _flat_weights_names = ()

    def reset_parameters(self) -> None:
        pass


class PresetLinear(PresetInit, torch.nn.Linear):
    """A vanilla nn.Linear (read-out heads)."""


class HeadedStack(torch.nn.Module):
    """forward(x[B, T, d_in]) -> y[B, T, d_out] through a backend's layers (`body`) and a linear read-out;
    `probes=True` also returns the named probes, each a linear head on the same last layer."""

    def _add_heads(self, config: dict, dtype: torch.dtype) -> None:
        """The read-out and probe heads (registered after the layers, so parameter names come in stack order)."""
        self.readout = PresetLinear(config["readout_in"], config["output_dim"], dtype=dtype)
        self.probe_names = list(config["probes"])
        self.probe_heads = torch.nn.ModuleList(PresetLinear(config["readout_in"], d, dtype=dtype)
                                               for d in config["probes"].values())

    def body(self, h: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError

    def forward(self, x: torch.Tensor, probes: bool = False):
        h = self.body(x.to(self.readout.weight.dtype))
        y = self.readout(h)
        if not probes:
            return y
        return y, {n: head(h) for n, head in zip(self.probe_names, self.probe_heads, strict=True)}

    def set_heads(self, stack: Stack, decoder: RatArray | None = None) -> None:
        """Read-out and probe weights: the stack's read-outs composed with the last layer's decoder."""
        with torch.no_grad():
            for head, r in [(self.readout, stack.output)] + [
                    (h, r) for h, (_, r) in zip(self.probe_heads, stack.probes, strict=True)]:
                head.weight.copy_(as_tensor(r.W if decoder is None else r.W.rat @ decoder))
                head.bias.copy_(as_tensor(r.b))


class LayerStack(HeadedStack):
    """Single-layer torch recurrent modules of class `layer_cls` (one per stage, each its own width) held in
    the ModuleList `prefix`, each called as a module (so its hooks run), then the read-out and probe heads."""

    layer_cls: type
    prefix: str
    layer_kwargs: dict = {}

    def __init__(self, config: dict, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.add_module(self.prefix, torch.nn.ModuleList(
            self.layer_cls(i, h, num_layers=1, batch_first=True, dtype=dtype, **self.layer_kwargs)
            for i, h in zip(config["inputs"], config["hiddens"], strict=True)))
        self._add_heads(config, dtype)

    def body(self, h: torch.Tensor) -> torch.Tensor:
        for layer in getattr(self, self.prefix):
            h = layer(h)[0]
        return h


def as_tensor(c, dtype=torch.float64) -> torch.Tensor:
    """Exact coefficients become floats only here, when weights are emitted."""
    if hasattr(c, "to_float"):  # RatArray: a fresh array, which the tensor may share
        return torch.from_numpy(c.to_float()).to(dtype)
    arr = c.f64 if hasattr(c, "f64") else np.asarray(c, dtype=np.float64)
    return torch.tensor(arr, dtype=dtype)


def abs_np(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().abs().numpy()
