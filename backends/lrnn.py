"""Canonical linear-RNN backend: per stage a linear state, a ReLU MLP or a gate, as a torch module. Exact."""

from __future__ import annotations

import torch
from lsrl.backends.base import Emitted, HeadedStack, Placement, Target, as_tensor
from torch import nn

from lsrl.guarantee.propagate import Context, StageErrors, rounding
from lsrl.ir.graph import Graph
from lsrl.ir.rational import RatArray
from lsrl.ir.recurrence import linear_recurrence
from lsrl.lowering.bounds import stack_bounds
from lsrl.lowering.stack import GateStage, MLPStage, Stack, StateStage

# (parameter names per stage kind, in the order they are stored)
_PARAMS = {"state": ("A", "B", "bias", "init"), "mlp": ("C", "c", "D", "E", "e"),
           "gate": ("P", "U", "u", "V", "v", "Q")}


class _Stage(nn.Module):
    def __init__(self, kind: str, shapes: dict[str, list[int]], dtype: torch.dtype):
        super().__init__()
        self.kind = kind
        for name in _PARAMS[kind]:
            self.register_parameter(name, nn.Parameter(torch.zeros(shapes[name], dtype=dtype), requires_grad=False))

    def forward(self, h: torch.Tensor) -> torch.Tensor:
        # biases and the sum of two products go into the matmuls (addmm): fewer passes over (B*T, width)
        # activations, which is where the time goes; the math is the stage's, up to summation order
        linear = nn.functional.linear
        if self.kind == "state":
            return linear_recurrence(linear(h, self.B, self.bias), self.A.T, self.init)
        flat = h.reshape(-1, h.shape[-1])
        if self.kind == "mlp":
            out = torch.addmm(linear(flat, self.C, self.c), linear(flat, self.E, self.e).relu_(), self.D.T)
        else:
            out = torch.addmm(linear(flat, self.P), linear(flat, self.U, self.u).mul_(linear(flat, self.V, self.v)),
                              self.Q.T)
        return out.reshape(*h.shape[:-1], out.shape[-1])


class LinearRNN(HeadedStack):
    """The lowered stack's stages as torch modules, then the read-out (and probe) heads."""

    def __init__(self, config: dict, dtype: torch.dtype = torch.float64):
        super().__init__()
        self.stages = nn.ModuleList(_Stage(s["kind"], s["shapes"], dtype) for s in config["stages"])
        self._add_heads(config, dtype)

    def body(self, h: torch.Tensor) -> torch.Tensor:
        for st in self.stages:
            h = st(h)
        return h


def _stage_tensors(st) -> dict[str, torch.Tensor]:
    return {name: as_tensor(getattr(st, name)) for name in _PARAMS[st.kind]}


class LrnnBackend:
    name = "lrnn"
    prefix = "stages"  # parameter-name prefix of the layers (module.stages[i])
    target = Target(needs_facts=False)
    summary = "all LSRL primitives, exactly (the model is the lowered stack itself)"

    def emit(self, graph: Graph, stack: Stack, facts=None, dtype: torch.dtype = torch.float64) -> Emitted:
        tensors = [_stage_tensors(st) for st in stack.stages]
        config = {
            "stages": [{"kind": st.kind, "shapes": {k: list(v.shape) for k, v in ts.items()}}
                       for st, ts in zip(stack.stages, tensors, strict=True)],
            "input_dim": stack.input_dim, "output_dim": stack.output.b.shape[0],
            "readout_in": stack.output.W.shape[1],
            "probes": {name: r.b.shape[0] for name, r in stack.probes},
        }
        module = self.build_module(config)
        with torch.no_grad():
            for stage, ts in zip(module.stages, tensors, strict=True):
                for name, t in ts.items():
                    getattr(stage, name).copy_(t)
        module.set_heads(stack)
        placements = [Placement(seg.node, f"stages.{i}", seg.start, seg.start + seg.dim, RatArray.eye(seg.dim),
                                RatArray.zeros(seg.dim))
                      for i, st in enumerate(stack.stages) for seg in st.out.segments]
        return Emitted(module, config, placements)

    def build_module(self, config: dict) -> nn.Module:
        return LinearRNN(config)

    def stage_errors(self, emitted: Emitted, i: int, stage, ctx: Context) -> StageErrors:
        return rounding(stage, ctx)  # the module computes the stack itself: its rounding only

    def conditions(self, dtype: torch.dtype) -> tuple[str, ...]:
        return ()

    def check_platform(self, dtype: torch.dtype) -> tuple[str, ...]:
        return ()

    def sum_bound(self, stack: Stack, emitted: Emitted, magnitudes, x_bound: float) -> float:
        stages, reads = stack_bounds(stack, magnitudes, x_bound)  # the module computes the stack itself
        return max([reads] + [b.sums for b in stages])


BACKEND = LrnnBackend()
__all__ = ["BACKEND", "GateStage", "LinearRNN", "MLPStage", "StateStage"]
