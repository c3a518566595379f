"""Canonical linear-RNN backend: per stage a linear state, a ReLU MLP or a gate, as a torch module. Exact."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
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
_OUT = {"state": "A", "mlp": "C", "gate": "P"}  # a parameter with one row per output unit


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
    # what an invertible change of basis acts on (lsrl.interpretability.obfuscate): every stage's output units,
    # each stage its own basis (lsrl.backends.base.linear_basis)
    linear_basis = ("every stage's output units, each stage its own basis: a state, an MLP's or a gate's "
                    "outputs are linear in the stage's inputs, state, hidden ReLUs and products")

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
        # the module computes the stack's matrices themselves (one term per value): their rounding only; a
        # product with a factor exactly 0 is exactly 0
        se = rounding(stage, replace(ctx, units=1))
        if stage.kind == "gate":
            se.zero_products = np.full(len(stage.gates), 3)
        return se

    def conditions(self, dtype: torch.dtype) -> tuple[str, ...]:
        return ()

    def check_platform(self, dtype: torch.dtype) -> tuple[str, ...]:
        return ()

    def sum_bound(self, stack: Stack, emitted: Emitted, magnitudes, x_bound: float) -> float:
        stages, reads = stack_bounds(stack, magnitudes, x_bound)  # the module computes the stack itself
        return max([reads] + [b.sums for b in stages])

    # ------------------------------------------------------------------ change of basis (obfuscation)

    def basis_layers(self, config: dict) -> tuple[list[tuple[int, tuple[int, ...], tuple[int, ...]]], list[int]]:
        """(per basis: width, pinned columns, pinned rows; per stage: the basis its units take): every stage its
        own, nothing pinned (the input is not a stage's units)."""
        return [(s["shapes"][_OUT[s["kind"]]][0], (), ()) for s in config["stages"]], list(range(len(config["stages"])))

    def rebased(self, module: LinearRNN, config: dict, bases: list, mul, x_lo=None) -> tuple[LinearRNN, dict]:
        """The module with stage i's units u_i in the basis u_i' = M_i u_i (`bases[i]` = (M_i, M_i^-1), float64
        arrays): its writers (rows of A, B, bias, init; C, c, D; P, Q) multiplied by M_i on the left, its
        readers (columns of A, B; C, E; P, U, V; the heads) by M_{i-1}^-1 on the right, A' = M A M^-1.
        `mul(a, b)` multiplies two float64 arrays (the caller's, which checks exactness where it must); the input
        (`x_lo`: its lower bounds) is not a stage's units and keeps its basis."""
        rows = {"state": ("A", "B", "bias", "init"), "mlp": ("C", "c", "D"), "gate": ("P", "Q")}
        cols = {"state": ("A", "B"), "mlp": ("C", "E"), "gate": ("P", "U", "V")}
        with torch.no_grad():
            prev = None
            for st, (M, Mi) in zip(module.stages, bases, strict=True):
                for name in _PARAMS[st.kind]:
                    w = getattr(st, name).detach().double().numpy()
                    if name in cols[st.kind]:
                        w = mul(w, Mi) if name == "A" else (w if prev is None else mul(w, prev))
                    if name in rows[st.kind]:
                        w = mul(M, w[:, None])[:, 0] if w.ndim == 1 else mul(M, w)
                    getattr(st, name).data = torch.from_numpy(w).to(getattr(st, name).dtype)
                prev = Mi
            if prev is not None:
                for head in [module.readout, *module.probe_heads]:
                    head.weight.data = torch.from_numpy(mul(head.weight.detach().double().numpy(), prev)).to(
                        head.weight.dtype)
        return module, config

    def basis_sums(self, compiled, module: LinearRNN, bases: list, contexts) -> tuple[float, str]:
        """The largest |partial sum| (in units of its quantum: the values and the rebased weights are integers)
        of the rebased module's arithmetic, as the integer certificate bounds it (lsrl.guarantee.certify), or
        (inf, why) where the compiled model is not certified integer arithmetic."""
        from lsrl.lowering.bounds import layout_bounds

        cert = compiled.certificate
        if cert.bound is None:
            return float("inf"), f"the model is not integer arithmetic ({cert.reason})"
        dom = compiled.program.input.domain
        h = h0 = np.full(compiled.stack.input_dim, max(abs(float(v)) for v in dom.values))  # rebased, exact values
        sums = [0.0]
        for st, stage, (M, _) in zip(compiled.stack.stages, module.stages, bases, strict=True):
            w = {name: getattr(stage, name).detach().double().numpy() for name in _PARAMS[st.kind]}
            if any(not np.array_equal(v, np.round(v)) for v in w.values()):
                return float("inf"), "a rebased weight is not an integer"
            A = {k: np.abs(v) for k, v in w.items()}
            exact = layout_bounds(st.out, compiled.facts.magnitudes)
            values = np.abs(M) @ exact
            if st.kind == "state":
                sums.append(A["A"] @ np.maximum(values, A["init"]) + A["B"] @ h + A["bias"])
            elif st.kind == "mlp":  # the hidden ReLUs hold what they held (their arguments are exact)
                inner = np.abs(st.E.f64) @ h0 + A["e"]
                sums += [A["E"] @ h + A["e"], A["C"] @ h + A["c"] + A["D"] @ inner]
            else:  # so do the products
                prod = (np.abs(st.U.f64) @ h0 + A["u"]) * (np.abs(st.V.f64) @ h0 + A["v"])
                sums += [A["U"] @ h + A["u"], A["V"] @ h + A["v"], prod, A["P"] @ h + A["Q"] @ prod]
            h, h0 = values, exact
        for head in [module.readout, *module.probe_heads]:
            W, b = head.weight.detach().double().numpy(), head.bias.detach().double().numpy()
            if not (np.array_equal(W, np.round(W)) and np.array_equal(b, np.round(b))):
                return float("inf"), "a rebased read-out weight is not an integer"
            sums.append(np.abs(W) @ h + np.abs(b))
        return max(float(np.max(s, initial=0.0)) for s in sums), ""


BACKEND = LrnnBackend()
__all__ = ["BACKEND", "GateStage", "LinearRNN", "MLPStage", "StateStage"]
