"""Magnitude bounds of every quantity the lowered stack computes, from range facts (for exactness certificates)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from lsrl.ir.coeffs import Coeffs
from lsrl.lowering.stack import Layout, Stack

# A bound is sound by induction over steps and stages: while every earlier operation was exact, each stage
# output unit holds exactly the IR value its layout names, which range analysis bounds. Intermediate
# quantities (hidden ReLU units, gate factors) are bounded by interval arithmetic over the stage's inputs.


@dataclass(frozen=True)
class StageBounds:
    """|.| bounds for one stage: its output values, its inner units (MLP hidden ReLUs or gate products; none
    for a state), and the largest |partial sum| any of its matrix products or additions can reach."""

    values: np.ndarray
    inner: np.ndarray
    sums: float

    @property
    def basis(self) -> np.ndarray:
        """Bounds of the stage's values then its inner units (the columns a backend decodes units from)."""
        return np.concatenate([self.values, self.inner])


def layout_bounds(layout: Layout, magnitudes) -> np.ndarray:
    """Per unit of `layout`: the bound of the IR value it holds (`magnitudes(node)` gives one per component)."""
    out = np.zeros(layout.width)
    for s in layout.segments:
        out[s.start:s.start + s.dim] = magnitudes(s.node)
    return out


def _mag(c: Coeffs, x: np.ndarray) -> np.ndarray:
    """Bound of every partial sum of c @ v for |v| <= x (each is at most sum_j |c_ij| x_j)."""
    return np.abs(c.f64) @ x


def stack_bounds(stack: Stack, magnitudes, x_bound: float) -> tuple[list[StageBounds], float]:
    """Bounds per stage (each stage's `abs_sums`), and the largest |partial sum| of the read-outs."""
    h = np.full(stack.input_dim, float(x_bound))
    out = []
    for st in stack.stages:
        values = layout_bounds(st.out, magnitudes)
        inner, sums = st.abs_sums(h, values)
        out.append(StageBounds(values, inner, float(sums.max(initial=0.0))))
        h = values
    reads = [stack.output] + [r for _, r in stack.probes]
    return out, max(float((_mag(r.W, h) + np.abs(r.b.f64)).max(initial=0.0)) for r in reads)


def integer_coefficients(stack: Stack) -> bool:
    """Whether every coefficient of the stack is an exact integer."""
    reads = [c for r in [stack.output] + [r for _, r in stack.probes] for c in (r.W, r.b)]
    return all(c.is_integer for c in [*stack.stage_coeffs(), *reads])
