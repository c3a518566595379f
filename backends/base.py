"""The backend interface: turn a lowered stack into a torch module with real parameter names."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch

from lsrl.ir.graph import Graph
from lsrl.lowering.stack import Stack


class ValueFacts(Protocol):
    """What range analysis proved about IR values (see lsrl.analysis.ranges)."""

    def is_boolean(self, node: int) -> bool: ...

    def bound(self, node: int) -> float: ...

    def nonnegative(self, node: int) -> bool: ...

    def magnitudes(self, node: int) -> list[float]:
        """Per component, a bound on |value| (inf where there is none); never raises."""
        ...


@dataclass(frozen=True)
class Placement:
    """Where an IR value lives in the compiled model: units [start, stop) of a layer, and how to read it."""

    node: int
    layer: str  # parameter-name prefix of the module holding the units, e.g. "rnns.2"
    start: int
    stop: int
    encoding: str  # "linear" | "relu" (v = u >= 0) | "pair" / "gate" (per component, v = u[2k] - u[2k+1])


@dataclass
class Emitted:
    module: torch.nn.Module
    config: dict  # JSON-able: enough to rebuild the module with `Backend.build_module`
    placements: list[Placement] = field(default_factory=list)
    # per layer, per unit: the column of the stage's value/inner basis the unit decodes (-1: a constant unit);
    # for backends whose units are not the stack's own values (rnn), so bounds can follow them
    unit_columns: list[list[int]] | None = None


@dataclass(frozen=True)
class Promise:
    """What a backend guarantees against the float64 interpreter."""

    exact_in_reals: bool
    rel_tol: float  # max |y - y_ref| / max(1, scale) allowed for this dtype
    note: str


class Backend(Protocol):
    name: str
    exact_constructs: str  # one line for docs and `lsrl verify`

    def emit(self, graph: Graph, stack: Stack, facts: ValueFacts | None) -> Emitted:
        """The weights as a float64 module (the driver casts it to the requested dtype)."""
        ...

    def build_module(self, config: dict) -> torch.nn.Module: ...

    def promise(self, dtype: torch.dtype, stack: Stack) -> Promise: ...

    def sum_bound(self, stack: Stack, emitted: Emitted, magnitudes, x_bound: float) -> float:
        """The largest |partial sum| (or product) the emitted module's arithmetic can reach, for inputs with
        |x| <= x_bound and IR values bounded by `magnitudes(node)`; inf or nan where unknown."""
        ...


class PresetLinear(torch.nn.Linear):
    """A vanilla nn.Linear (read-out heads) that skips the random init: emit or a checkpoint sets every
    weight, and the init is half of what building the layer costs."""

    def reset_parameters(self) -> None:
        pass


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


def as_tensor(c, dtype=torch.float64) -> torch.Tensor:
    """Exact coefficients become floats only here, when weights are emitted."""
    import numpy as np

    if hasattr(c, "to_float"):  # RatArray: a fresh array, which the tensor may share
        return torch.from_numpy(c.to_float()).to(dtype)
    arr = c.f64 if hasattr(c, "f64") else np.asarray(c, dtype=np.float64)
    return torch.tensor(arr, dtype=dtype)


USEFUL_REL = 1e-2  # a rounding budget this large (1% of the value scale) guarantees nothing worth verifying


def rounding_tol(dtype: torch.dtype, stack: Stack, factor: int) -> float:
    """Relative rounding budget: unit roundoff x depth x the largest coefficient (how much a steep ReLU
    ramp such as step(x, scale) can amplify an upstream rounding error) x a per-backend allowance."""
    eps = torch.finfo(dtype).eps
    biggest = max([1.0, stack.output.W.max_abs()] + [c.max_abs() for c in stack.stage_coeffs()])
    return eps * factor * (len(stack.stages) + 1) * biggest
