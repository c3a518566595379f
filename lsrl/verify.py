"""Check a compiled model against the reference interpreter on random and edge-case inputs."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch

from lsrl.backends.base import USEFUL_REL
from lsrl.compile import DTYPES, Compiled, CompileOptions, compile_program
from lsrl.diagnostics import error
from lsrl.ir.interpreter import interpret
from lsrl.program import Program


@dataclass(frozen=True)
class VerifyReport:
    backend: str
    dtype: str
    sequences: int
    length: int
    max_abs: float
    max_rel: float  # max_abs / max(1, value scale)
    scale: float
    promised_rel: float
    promise_note: str
    probe_max_rel: float
    exact_share: float | None  # share of exactly right tokens when the reference output is integer-valued
    parameters: int

    @property
    def bounded(self) -> bool:
        """Whether the promise says anything: a rounding budget of USEFUL_REL or more bounds nothing useful."""
        return self.promised_rel < USEFUL_REL

    @property
    def passed(self) -> bool:
        return self.bounded and self.max_rel <= self.promised_rel and self.probe_max_rel <= self.promised_rel

    def lines(self) -> list[str]:
        promised = (f"promised rel err <= {self.promised_rel:.3g}" if self.bounded else
                    f"no useful promise (rounding budget {self.promised_rel:.3g} >= {USEFUL_REL:g})")
        out = [f"  model: {self.parameters:,} parameters",
               f"  output: max abs err {self.max_abs:.3g}, max rel err {self.max_rel:.3g} "
               f"(value scale {self.scale:.3g}); {promised}",
               f"  probes: max rel err {self.probe_max_rel:.3g}",
               f"  promise: {self.promise_note}"]
        if self.exact_share is not None:
            out.append(f"  integer-valued output: {100 * self.exact_share:.2f}% of tokens exactly right")
        if not self.bounded:
            out.append(f"  FAIL: {self.dtype} cannot be verified for this program: its largest constants amplify "
                       f"{self.dtype} rounding beyond any useful bound (the errors measured above are no guarantee)")
        else:
            out.append("  PASS" if self.passed else "  FAIL: error exceeds the promised bound")
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
           compiled: Compiled | None = None, batch: int = 64) -> VerifyReport:
    """Compile (or take `compiled`), run interpreter and model on the same inputs, and check the promise."""
    _check_length(length, options.max_len)
    compiled = compiled or compile_program(program, options)
    return compare(program, compiled.module, options.backend, options.dtype, compiled.promise(options.dtype),
                   samples, length, seed, batch)


def verify_checkpoint(program: Program, directory, samples: int = 256, length: int = 256, seed: int = 0,
                      batch: int = 64) -> VerifyReport:
    """Check a saved checkpoint (loaded with all its integrity checks) against `program`'s interpreter,
    under the promise recorded when it was compiled. The program must be the one it was compiled from."""
    from lsrl.backends.base import Promise
    from lsrl.runtime.checkpoint import CONFIG_FILE, load, load_config, program_record

    cfg = load_config(directory)
    module = load(directory)
    want, got = cfg.get("program", {}), program_record(program)
    for key, what in (("source_sha256", "source (sha256 {:.12}…)"), ("params", "params ({})")):
        if want.get(key) != got[key]:
            raise error("E0704", f"checkpoint {directory} was compiled from {what.format(str(want.get(key)))}, "
                        f"not from {program.file} with {what.format(str(got[key]))}", None,
                        "verify against the exact source and -D values it was compiled with, or recompile it")
    promise = cfg.get("promise")
    if not (isinstance(promise, dict) and isinstance(promise.get("rel_tol"), float | int)):
        raise error("E0803", f"{CONFIG_FILE} of {directory} records no promise to verify against", None,
                    "recompile it with `lsrl compile` (checkpoints now record the backend's promise)")
    _check_length(length, cfg.get("compile_options", {}).get("max_len"))
    return compare(program, module, cfg["backend"], cfg["dtype"],
                   Promise(bool(promise.get("exact_in_reals")), float(promise["rel_tol"]), str(promise.get("note"))),
                   samples, length, seed, batch)


def _check_length(length: int, max_len: int | None) -> None:
    if max_len is not None and length > max_len:
        raise error("E0703", f"--length {length} exceeds --max-len {max_len}", None,
                    "the compiled constants are only proven for sequences up to max-len")


def compare(program: Program, module: torch.nn.Module, backend: str, dtype: str, promise, samples: int,
            length: int, seed: int, batch: int = 64) -> VerifyReport:
    """Interpreter vs `module` on random inputs from the declared domain plus edge cases."""
    x = sample_inputs(program, samples, length, seed)
    abs_err, probe_err, scale, right, total = 0.0, 0.0, 1.0, 0, 0
    integer = True
    for start in range(0, x.shape[0], batch):
        xb = x[start:start + batch]
        ref = interpret(program.graph, xb)
        with torch.no_grad():
            y, probes = module(torch.tensor(xb, dtype=DTYPES[dtype]), probes=True)
        y = y.double().numpy()
        abs_err = max(abs_err, float(np.abs(y - ref.output).max()))
        scale = max(scale, float(np.abs(ref.output).max()))
        for name, p in probes.items():
            r = ref.probes[name]
            probe_err = max(probe_err, float(np.abs(p.double().numpy() - r).max() / max(1.0, np.abs(r).max())))
        integer = integer and bool(np.all(ref.output == np.round(ref.output)))
        right += int(np.sum(np.round(y) == ref.output))
        total += ref.output.size
    parameters = sum(t.numel() for t in module.state_dict().values())
    return VerifyReport(backend, dtype, x.shape[0], length, abs_err, abs_err / scale, scale, promise.rel_tol,
                        promise.note, probe_err, right / total if integer else None, parameters)
