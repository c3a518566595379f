"""The promise policy: what a compiled model guarantees in a dtype, from its backend's stated errors.

- The model's bound: the backend's per-stage errors propagated to every output (lsrl.guarantee.propagate).
  Where the integer certificate shows the model's arithmetic exact in the dtype, the bound is 0.
- The reference's bound: the same analysis for the stack evaluated in float64 with the stack's own rounding
  (one term per value), times 4 for the interpreter's different association of the (unoptimised) linear
  maps. `lsrl verify` allows the sum of both between the model and the float64 interpreter.
- A bound that cannot be proven (a value range analysis cannot bound) is inf: no useful promise.
- A step whose input error may reach half its ramp width at a kink (`relu_groups.Unresolved`: rounding may decide
  which side it is on), in a model whose output the bound does not usefully cover, is refused (E0708) with
  what would resolve it, instead of promising a bound as large as the values it switches. A probe whose bound
  is not useful keeps it (as `lsrl verify` does, which names such probes but judges the output).
"""

from __future__ import annotations

import math
from dataclasses import replace
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import torch

from lsrl.diagnostics import SOURCES, LsrlError, Note, error
from lsrl.guarantee.promise import BOUNDED, CLASSES, OutputPromise, Promise
from lsrl.guarantee.propagate import BIG, propagate, rounding
from lsrl.lowering.bounds import layout_bounds

if TYPE_CHECKING:
    from lsrl.compiling import Compiled

REFERENCE_FACTOR = 4.0


def _x_bound(program, dtype: torch.dtype) -> tuple[np.ndarray, bool, bool]:
    """|x| bound, whether every input value is an integer, and whether the dtype holds each one exactly."""
    dom = program.input.domain
    b = math.inf if dom is None else max(abs(float(v)) for v in dom.bounds)
    is_set = dom is not None and dom.kind == "set"
    integer = is_set and all(Fraction(v).denominator == 1 for v in dom.values)
    exact = is_set and all(Fraction(float(torch.tensor(float(v), dtype=dtype))) == Fraction(v) for v in dom.values)
    return np.full(program.input.dim, b), integer, exact


def make_promise(compiled: Compiled, dtype_name: str) -> Promise:
    from lsrl.backends import get_backend
    from lsrl.compiling import DTYPES

    dtype = DTYPES[dtype_name]
    backend = get_backend(compiled.options.backend)
    max_len = compiled.options.length_limit
    names = ["output"] + [n for n, _ in compiled.stack.probes]
    try:
        facts = compiled.facts
    except LsrlError as exc:
        inf = OutputPromise(BOUNDED, math.inf, math.inf)
        return Promise(backend.name, dtype_name, max_len, dict.fromkeys(names, inf),
                       note=f"no bound: range analysis failed ({exc.diagnostics[0].message})")
    u = torch.finfo(dtype).eps / 2
    xb, xi, xe = _x_bound(compiled.program, dtype)
    xe64 = _x_bound(compiled.program, torch.float64)[2]

    def model_errors(i, st, ctx):
        return backend.stage_errors(compiled.emitted, i, st, ctx)

    model = propagate(compiled.stack, facts, xb, xi, xe, max_len, u, model_errors)
    ref = propagate(compiled.stack, facts, xb, xi, xe64, max_len, 2.0**-53,
                    lambda i, st, ctx: rounding(st, replace(ctx, units=1)))  # one term per value, as in lrnn
    cert = compiled.certificate
    certified = f"{dtype_name} arithmetic certified exact ({cert})" if cert.exact_in(dtype) else ""
    outputs = {}
    reads = dict([("output", compiled.stack.output), *compiled.stack.probes])
    for name in names:
        bound = 0.0 if certified else float(model.bounds[name].max(initial=0.0))
        outputs[name] = OutputPromise(CLASSES[model.exactness[name]], _clean(bound),
                                      _clean(REFERENCE_FACTOR * float(ref.bounds[name].max(initial=0.0))),
                                      _integer_read(compiled.stack, reads[name], facts))
    if model.unresolved and not outputs["output"].useful(_scale(compiled.stack, reads["output"], facts)):
        raise _unresolved(compiled, model.unresolved[0], dtype_name)
    note = backend.summary
    return Promise(backend.name, dtype_name, max_len, outputs, backend.conditions(dtype), certified, note)


def _unresolved(compiled: Compiled, step, dtype_name: str) -> LsrlError:
    """E0708 at the first step the dtype cannot resolve, with what would resolve it."""
    node = compiled.graph[step.node]
    what = f"`{node.label or SOURCES.span_text(node.span) or f'%{node.id}'}`"
    wider = "compile for float64 (rounding 2^29 times smaller), or " if dtype_name != "float64" else ""
    return error(
        "E0708", f"{dtype_name} cannot be proven to resolve the step {what}: its input is known only to within "
        f"{step.error:.3g} near a kink, and its ramp is {step.width:.3g} wide", node.span,
        f"{wider}widen the ramp to at least about {4 * step.error:.2g} (a smaller sharpness or a larger eps), "
        "compare an integer with a half-integer (`larger(c, 7 / 2)` for c > 3: every kink half a unit away), or "
        "compare smaller values (the error grows with the magnitudes the step's input is computed from)",
        (Note("within half a ramp width of a kink, rounding decides which side of the step the model is on: "
              "the model's output there could be off by the full height of the step"),))


def _read_layout(stack):
    """The layout the read-outs read: the last stage's output."""
    return stack.stages[-1].out if stack.stages else stack.input_layout


def _scale(stack, read, facts) -> float:
    """The largest magnitude range analysis allows a read-out's components."""
    mags = np.minimum(layout_bounds(_read_layout(stack), facts.magnitudes), BIG)
    return float((np.abs(read.W.f64) @ mags + np.abs(read.b.f64)).max(initial=0.0))


def _integer_read(stack, read, facts) -> bool:
    """Whether a read-out is integer-valued: integer coefficients over values range analysis proves integer."""
    if read.W.rat.den != 1 or read.b.rat.den != 1:
        return False
    ints = layout_bounds(_read_layout(stack), facts.integers).astype(bool)
    return bool(np.all(ints[np.flatnonzero((read.W.f64 != 0).any(axis=0))]))


def _clean(x: float) -> float:
    """nan (an unknown met a zero) and sums of the BIG stand-in for an unbounded magnitude are no bound."""
    return math.inf if math.isnan(x) or x >= BIG / 1e50 else x
