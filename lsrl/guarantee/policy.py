"""The promise policy: what a compiled model guarantees in a dtype, from its backend's stated errors.

- The model's bound: the backend's per-stage errors propagated to every output (lsrl.guarantee.propagate).
  Where the integer certificate shows the model's arithmetic exact in the dtype, the bound is 0.
- The reference's bound: the same analysis for the stack evaluated in float64 with the stack's own rounding,
  times 4 for the interpreter's different association of the (unoptimised) linear maps. `lsrl verify` allows
  the sum of both between the model and the float64 interpreter.
- A bound that cannot be proven (a value range analysis cannot bound) is inf: no useful promise.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import TYPE_CHECKING

import numpy as np
import torch

from lsrl.diagnostics import LsrlError
from lsrl.guarantee.promise import BOUNDED, CLASSES, OutputPromise, Promise
from lsrl.guarantee.propagate import propagate, rounding

if TYPE_CHECKING:
    from lsrl.compile import Compiled

REFERENCE_FACTOR = 4.0


def _x_bound(program) -> tuple[np.ndarray, bool]:
    dom = program.input.domain
    b = math.inf if dom is None else max(abs(float(v)) for v in dom.bounds)
    integer = dom is not None and dom.kind == "set" and all(Fraction(v).denominator == 1 for v in dom.values)
    return np.full(program.input.dim, b), integer


def make_promise(compiled: Compiled, dtype_name: str) -> Promise:
    from lsrl.backends import get_backend
    from lsrl.compile import DTYPES

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
    xb, xi = _x_bound(compiled.program)

    def model_errors(i, st, ctx):
        return backend.stage_errors(compiled.emitted, i, st, ctx)

    model = propagate(compiled.stack, facts.magnitudes, facts.integers, xb, xi, max_len, u, model_errors)
    ref = propagate(compiled.stack, facts.magnitudes, facts.integers, xb, xi, max_len, 2.0**-53,
                    lambda i, st, ctx: rounding(st, ctx))
    cert = compiled.certificate
    certified = f"{dtype_name} arithmetic certified exact ({cert})" if cert.exact_in(dtype) else ""
    outputs = {}
    for name in names:
        bound = 0.0 if certified else float(model.bounds[name].max(initial=0.0))
        outputs[name] = OutputPromise(CLASSES[model.exactness[name]], _clean(bound),
                                      _clean(REFERENCE_FACTOR * float(ref.bounds[name].max(initial=0.0))))
    note = backend.summary
    return Promise(backend.name, dtype_name, max_len, outputs, backend.conditions(dtype), certified, note)


def _clean(x: float) -> float:
    return math.inf if math.isnan(x) else x
