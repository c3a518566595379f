"""Exactness certificates: when float arithmetic provably computes a compiled model without any rounding.

If every weight of the model is an integer, every input is an integer, and every partial sum and product
the model forms is at most 2^(p+1) in magnitude (p: the dtype's mantissa bits, so 2^24 for float32), then
every intermediate result is an integer that the dtype represents exactly, whatever order a matmul sums
in (with or without fused multiply-adds): the float model computes the exact program. The bound comes
from range analysis of the IR values each unit holds and interval arithmetic on the weights.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from fractions import Fraction
from typing import TYPE_CHECKING

import torch

from lsrl.diagnostics import LsrlError
from lsrl.lowering.bounds import integer_coefficients

if TYPE_CHECKING:
    from lsrl.compiling import Compiled

_SLACK = 1 - 1e-9  # the bound is itself computed in float64: keep clear of the limit


@dataclass(frozen=True)
class Certificate:
    """`bound`: the largest |partial sum| of the model's arithmetic, when weights and inputs are integers
    (else None, with the reason)."""

    bound: float | None
    reason: str = ""

    def exact_in(self, dtype: torch.dtype) -> bool:
        limit = 2.0 / torch.finfo(dtype).eps  # 2^(p+1): 2^24 for float32, 2^53 for float64
        return self.bound is not None and self.bound <= limit * _SLACK  # False for nan too

    def __str__(self) -> str:
        if self.bound is None:
            return f"not integer arithmetic: {self.reason}"
        return f"integer weights and inputs; every partial sum within {self.bound:.6g}"


def certify(compiled: Compiled) -> Certificate:
    from lsrl.backends import get_backend

    dom = compiled.program.input.domain
    if dom is None or dom.kind != "set" or any(Fraction(v).denominator != 1 for v in dom.values):
        return Certificate(None, "the input domain is not a set of integers")
    if not integer_coefficients(compiled.stack):
        return Certificate(None, "some coefficient is not an integer")
    try:
        facts = compiled.facts
    except LsrlError as exc:
        return Certificate(None, f"range analysis failed ({exc.diagnostics[0].message})")
    except Exception as exc:  # a certificate is optional: the rounding budget still stands without one
        return Certificate(None, f"range analysis failed ({type(exc).__name__}: {exc})")
    x_bound = max(abs(float(v)) for v in dom.values)
    bound = get_backend(compiled.options.backend).sum_bound(compiled.stack, compiled.emitted, facts.magnitudes,
                                                            x_bound)
    return Certificate(math.inf if math.isnan(bound) else bound)  # nan: an unbounded value met a zero weight
