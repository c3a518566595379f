"""The architecture-neutral lowered model: a stack of state, ReLU-MLP and gate stages, with its interpreter."""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass

import numpy as np

from lsrl.cached import cached
from lsrl.ir.coeffs import Coeffs
from lsrl.ir.recurrence import linear_recurrence


@dataclass(frozen=True)
class Segment:
    """Units [start, start + dim) of a vector hold IR node `node` (its label/span are in the graph)."""

    node: int
    start: int
    dim: int


@dataclass(frozen=True)
class Layout:
    segments: tuple[Segment, ...]

    @cached  # lowering and the backends ask for these per segment they write
    def width(self) -> int:
        return sum(s.dim for s in self.segments)

    @cached
    def _by_node(self) -> dict[int, Segment]:
        return {s.node: s for s in self.segments}

    def find(self, node: int) -> Segment:
        return self._by_node[node]


@dataclass(frozen=True)
class StateStage:
    """z_t = A z_{t-1} + B h_t + bias, z_0 = init (rows that only pass a value through have A = 0)."""

    A: Coeffs
    B: Coeffs
    bias: Coeffs
    init: Coeffs
    out: Layout
    kind = "state"


@dataclass(frozen=True)
class MLPStage:
    """m = C z + c + D relu(E z + e): linear pass-through plus one hidden ReLU layer."""

    C: Coeffs
    c: Coeffs
    D: Coeffs
    E: Coeffs
    e: Coeffs
    out: Layout
    kind = "mlp"


@dataclass(frozen=True)
class GateStage:
    """g = P m + Q ((U m + u) * (V m + v)): pass-through plus placed elementwise products."""

    P: Coeffs
    U: Coeffs
    u: Coeffs
    V: Coeffs
    v: Coeffs
    Q: Coeffs
    out: Layout
    gates: tuple[int, ...]  # the IR Multi node of each product row (for backends needing operand facts)
    kind = "gate"


Stage = StateStage | MLPStage | GateStage


@dataclass(frozen=True)
class Readout:
    W: Coeffs
    b: Coeffs


@dataclass(frozen=True)
class Stack:
    input_dim: int
    input_layout: Layout
    stages: tuple[Stage, ...]
    output: Readout
    probes: tuple[tuple[str, Readout], ...]

    def widths(self) -> list[int]:
        return [self.input_dim] + [s.out.width for s in self.stages]

    def stage_coeffs(self) -> Iterator[Coeffs]:
        """Every coefficient array of every stage (read-outs not included)."""
        for s in self.stages:
            for name in s.__dataclass_fields__:
                v = getattr(s, name)
                if isinstance(v, Coeffs):
                    yield v

    def parameter_count(self) -> int:
        return sum(math.prod(c.shape) for c in (*self.stage_coeffs(), self.output.W, self.output.b))


def run_stack(stack: Stack, x: np.ndarray, exact: bool = False) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """Evaluate the stack on x (batch, time, dim): float64, or exact over Fraction object arrays."""

    def m(c: Coeffs):
        return c.data if exact else c.f64

    h = x if exact else np.asarray(x, dtype=np.float64)
    for st in stack.stages:
        if isinstance(st, StateStage):
            h = linear_recurrence(h @ m(st.B).T + m(st.bias), m(st.A).T, m(st.init))
        elif isinstance(st, MLPStage):
            pre = h @ m(st.E).T + m(st.e)
            act = np.where(pre > 0, pre, 0 * pre)
            h = h @ m(st.C).T + m(st.c) + act @ m(st.D).T
        else:
            prod = (h @ m(st.U).T + m(st.u)) * (h @ m(st.V).T + m(st.v))
            h = h @ m(st.P).T + prod @ m(st.Q).T
    y = h @ m(stack.output.W).T + m(stack.output.b)
    probes = {name: h @ m(r.W).T + m(r.b) for name, r in stack.probes}
    return y, probes
