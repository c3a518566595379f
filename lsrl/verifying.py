"""Check a compiled model against the reference interpreter on random and edge-case inputs."""

from __future__ import annotations

import os
from dataclasses import dataclass, field

import numpy as np
import torch

from lsrl.compiling import DTYPES, Compiled, CompileOptions, compile_program
from lsrl.diagnostics import error
from lsrl.guarantee.promise import USEFUL_REL, Promise
from lsrl.ir.interpreter import interpret
from lsrl.program import Program


@dataclass(frozen=True)
class VerifyReport:
    backend: str
    dtype: str
    sequences: int
    length: int
    promise: Promise
    errors: dict[str, float]  # "output" and every probe: max |model - reference|
    scales: dict[str, float]  # max |reference| (at least 1)
    exact_share: float | None  # share of exactly right tokens when the reference output is integer-valued
    parameters: int
    platform: tuple[str, ...] = field(default=())  # promise conditions that failed on this platform

    @property
    def max_abs(self) -> float:
        return self.errors["output"]

    @property
    def scale(self) -> float:
        return self.scales["output"]

    @property
    def max_rel(self) -> float:
        return self.max_abs / self.scale

    @property
    def probe_max_rel(self) -> float:
        return max((self.errors[k] / self.scales[k] for k in self.errors if k != "output"), default=0.0)

    @property
    def bounded(self) -> bool:
        """Whether the promise says anything about the output: a bound of USEFUL_REL of the value scale or more
        bounds nothing worth checking. A probe without a useful promise is reported as such (`loose`) and still
        checked against its bound, but it does not make the model unverifiable: probes are extra reads of it."""
        return self.promise.outputs["output"].useful(self.scales["output"])

    @property
    def loose(self) -> list[str]:
        """The probes whose promise is not useful (see `bounded`)."""
        return [k for k in self.errors if k != "output" and not self.promise.outputs[k].useful(self.scales[k])]

    @property
    def passed(self) -> bool:
        return (self.bounded and not self.platform
                and all(e <= self.promise.outputs[k].allowed for k, e in self.errors.items()))

    def to_json(self) -> dict:
        """The report as JSON-able data (`lsrl verify --json`)."""
        return {"backend": self.backend, "dtype": self.dtype, "sequences": self.sequences, "length": self.length,
                "parameters": self.parameters, "passed": self.passed, "bounded": self.bounded,
                "loose_probes": self.loose,
                "errors": self.errors, "scales": self.scales, "exact_share": self.exact_share,
                "platform_failures": list(self.platform), "promise": self.promise.to_json()}

    def lines(self) -> list[str]:
        p = self.promise
        out = [f"  model: {self.parameters:,} parameters",
               f"  promise: {p.summary()}"]
        if p.conditions:
            out.append(f"  conditions: {'; '.join(p.conditions)}")
        for k, e in self.errors.items():
            o = p.outputs[k]
            what = "output" if k == "output" else f"probe {k}"
            bound = (f"allowed {o.allowed:.3g}" if o.useful(self.scales[k]) else
                     f"no useful promise (bound {o.allowed:.3g} >= {USEFUL_REL:g} x value scale)")
            out.append(f"  {what}: {o.exactness}; max abs err {e:.3g} (value scale {self.scales[k]:.3g}); {bound}")
        if self.exact_share is not None:
            out.append(f"  integer-valued output: {100 * self.exact_share:.2f}% of tokens exactly right")
        if self.platform:
            out.append(f"  FAIL: this platform breaks the promise's conditions: {'; '.join(self.platform)}")
        elif not self.bounded:
            out.append(f"  FAIL: {self.dtype} cannot be verified for this program: no useful bound is proven (its "
                       "largest constants amplify rounding; the errors measured above are no guarantee)")
        elif not self.passed:
            out.append("  FAIL: error exceeds the promised bound")
        else:
            loose = f" (no useful promise for probe {', '.join(self.loose)})" if self.loose else ""
            out.append(f"  PASS{loose}")
        return out


def edge_cases(program: Program, length: int) -> np.ndarray:
    """Constant sequences at the domain's extremes and an alternation between them."""
    dom, dim = program.input.domain, program.input.dim
    if dom is None:
        lo, hi = -1.0, 1.0
    else:
        lo, hi = (float(v) for v in dom.bounds)
    alt = np.where(np.arange(length) % 2 == 0, lo, hi)
    rows = [np.full(length, lo), np.full(length, hi), alt, alt[::-1].copy()]
    return np.stack([np.repeat(r[:, None], dim, axis=1) for r in rows])


def sample_inputs(program: Program, samples: int, length: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return np.concatenate([program.input.sample(rng, samples, length), edge_cases(program, length)])


def verify(program: Program, options: CompileOptions, samples: int = 256, length: int = 256, seed: int = 0,
           compiled: Compiled | None = None, batch: int = 64, progress=None) -> VerifyReport:
    """Compile (or take `compiled`), run interpreter and model on the same inputs, and check the promise.
    `progress(done, total)`, if given, is called after each batch of sequences."""
    check_run(samples, length, program.graph.input_dim, options.length_limit)
    compiled = compiled or compile_program(program, options)
    return compare(program, compiled.module, compiled.promise(options.dtype), samples, length, seed, batch,
                   progress)


def verify_checkpoint(program: Program, directory, samples: int = 256, length: int = 256, seed: int = 0,
                      batch: int = 64, progress=None) -> VerifyReport:
    """Check a saved checkpoint (loaded with all its integrity checks) against `program`'s interpreter,
    under the promise recorded when it was compiled. The program must be the one it was compiled from."""
    from lsrl.runtime.checkpoint import check_program, load, load_config, recorded_promise

    cfg = load_config(directory)
    module = load(directory)
    check_program(cfg, program, directory)
    promise = recorded_promise(cfg, directory)
    check_run(samples, length, program.graph.input_dim, promise.max_len)
    return compare(program, module, promise, samples, length, seed, batch, progress)


def exact_reference(program: Program, x: np.ndarray):
    """The interpreter's result in exact rational arithmetic, rounded to float64 once at the end."""
    r = interpret(program.reference_graph, x, exact=True)
    return type(r)(r.output.astype(np.float64), {k: v.astype(np.float64) for k, v in r.probes.items()})


MAX_VALUES = int(os.environ.get("LSRL_MAX_VERIFY_VALUES", 1 << 27))  # samples x length x width, per run


def check_run(samples: int, length: int, width: int, max_len: int) -> None:
    """Refuse a run too large to hold (E0704) or longer than the model's max_len (E0703)."""
    if samples * length * width > MAX_VALUES:
        raise error("E0704", f"--samples {samples} x --length {length} x input width {width} is "
                    f"{samples * length * width:,} values, above the limit of {MAX_VALUES:,}", None,
                    "verify in smaller runs, or set LSRL_MAX_VERIFY_VALUES to allow more")
    if length > max_len:
        raise error("E0703", f"--length {length} exceeds the max-len {max_len} the model was compiled for", None,
                    "the compiled constants and the promise hold for sequences up to max-len only: verify at most "
                    "that long, or recompile with a larger --max-len")


def compare(program: Program, module: torch.nn.Module, promise: Promise, samples: int, length: int, seed: int,
            batch: int = 64, progress=None) -> VerifyReport:
    """Interpreter vs `module` on random inputs from the declared domain plus edge cases."""
    from lsrl.backends import get_backend

    x = sample_inputs(program, samples, length, seed)
    errors = dict.fromkeys(promise.outputs, 0.0)
    scales = dict.fromkeys(promise.outputs, 1.0)
    right, total, integer = 0, 0, True
    dtype = DTYPES[promise.dtype]
    for start in range(0, x.shape[0], batch):
        xb = x[start:start + batch]
        ref = interpret(program.reference_graph, xb)
        with torch.no_grad():
            y, probes = module(torch.tensor(xb, dtype=dtype), probes=True)
        got = {"output": (y.double().numpy(), ref.output)}
        got.update({k: (p.double().numpy(), ref.probes[k]) for k, p in probes.items()})
        if any(np.abs(m - r).max(initial=0.0) > promise.outputs[k].allowed for k, (m, r) in got.items()):
            # the float64 reference may be the one that is off (its own rounding, e.g. of a 1/3 the stack folds
            # away, or values beyond 2^53): judge this batch against the exact interpreter instead
            ref = exact_reference(program, xb)
            got = {k: (m, ref.output if k == "output" else ref.probes[k]) for k, (m, _) in got.items()}
        for k, (m, r) in got.items():
            errors[k] = max(errors[k], float(np.abs(m - r).max(initial=0.0)))
            scales[k] = max(scales[k], float(np.abs(r).max(initial=0.0)))
        integer = integer and bool(np.all(ref.output == np.round(ref.output)))
        right += int(np.sum(np.round(got["output"][0]) == ref.output))
        total += ref.output.size
        if progress is not None:
            progress(start + len(xb), x.shape[0])
    parameters = sum(t.numel() for t in module.state_dict().values())
    failed = tuple(get_backend(promise.backend).check_platform(dtype))
    return VerifyReport(promise.backend, promise.dtype, x.shape[0], length, promise, errors, scales,
                        right / total if integer else None, parameters, failed)
