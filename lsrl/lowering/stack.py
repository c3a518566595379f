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


def _abs(c: Coeffs) -> np.ndarray:
    return np.abs(c.f64)


@dataclass(frozen=True)
class StateStage:
    """z_t = A z_{t-1} + B h_t + bias, z_0 = init (rows that only pass a value through have A = 0)."""

    A: Coeffs
    B: Coeffs
    bias: Coeffs
    init: Coeffs
    out: Layout
    kind = "state"

    @cached
    def accumulators(self) -> np.ndarray:
        """Per row r: s_r <- s_r + B_r h, alone (A's row and column r hold only A_rr = 1; no bias)."""
        rows, cols = self.A.nonzero
        n = self.A.shape[0]
        ones = (rows == cols) & (self.A.f64[rows, cols] == 1)
        diag = np.zeros(n, dtype=bool)
        diag[rows[ones]] = True
        alone = (np.bincount(rows, minlength=n) == 1) & (np.bincount(cols, minlength=n) == 1)
        return diag & alone & (self.bias.abs64 == 0)

    def run(self, h, m):
        """The stage on a (batch, time, dim) array; `m(coeffs)` gives each matrix as float or exact entries."""
        return linear_recurrence(h @ m(self.B).T + m(self.bias), m(self.A).T, m(self.init))

    def abs_sums(self, h: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(inner units, every partial sum) bounds for |inputs| <= h and |outputs| <= values; the state
        reads s_0 = init too, which readers never see."""
        sums = _abs(self.A) @ np.maximum(values, _abs(self.init)) + _abs(self.B) @ h + _abs(self.bias)
        return np.zeros(0), sums


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

    def run(self, h, m):
        pre = h @ m(self.E).T + m(self.e)
        return h @ m(self.C).T + m(self.c) + np.where(pre > 0, pre, 0 * pre) @ m(self.D).T

    def abs_sums(self, h: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        inner = _abs(self.E) @ h + _abs(self.e)
        return inner, np.concatenate([inner, _abs(self.C) @ h + _abs(self.c) + _abs(self.D) @ inner])


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

    def run(self, h, m):
        prod = (h @ m(self.U).T + m(self.u)) * (h @ m(self.V).T + m(self.v))
        return h @ m(self.P).T + prod @ m(self.Q).T

    def abs_sums(self, h: np.ndarray, values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        u, v = _abs(self.U) @ h + _abs(self.u), _abs(self.V) @ h + _abs(self.v)
        inner = u * v
        return inner, np.concatenate([u, v, inner, _abs(self.P) @ h + _abs(self.Q) @ inner])


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
        h = st.run(h, m)
    y = h @ m(stack.output.W).T + m(stack.output.b)
    probes = {name: h @ m(r.W).T + m(r.b) for name, r in stack.probes}
    return y, probes
