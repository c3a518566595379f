"""Promises: per output, how exact a compiled model is and a proven bound on its error.

A promise is made for one dtype, one `max_len` and stated conditions (the platform facts a float-exact
construction relies on, the scan implementation). Each output (the program's output and every probe) gets

- an exactness class, the weakest of the constructions it depends on:
  ``exact``        exact in real arithmetic; the float model differs by rounding only (lrnn, rnn);
  ``float-exact``  an approximation in real arithmetic whose truncation error is below half an ulp, so the
                   float model rounds like an exact one, under the stated conditions (small-signal tanh,
                   saturated sigmoids: gru, lstm);
  ``bounded``      an approximation with a proven error (approximate products, ReLU surrogates next to their
                   kink);
  ``platform``     the bound rests on float behaviour this platform was not checked for;
- ``abs_bound``: a proven bound on |model - program| (exact real semantics) over every input of the declared
  domain and every length up to ``max_len``, in this dtype: each construction's local error (rounding
  included) propagated through the later stages (`lsrl.guarantee.propagate`);
- ``reference_bound``: the allowance for the float64 reference interpreter, which `lsrl verify` compares
  against (4x the same analysis of the stack in float64: the interpreter evaluates the unfused graph, whose
  chained linear maps round more often), so a model passes when |model - reference| <= the sum of both;
- ``integer``: range analysis proves the output integer-valued; a bound below 1/2 then makes the rounded
  model output exactly the program's ("exact after rounding").
"""

from __future__ import annotations

import math
from dataclasses import dataclass

EXACT, FLOAT_EXACT, BOUNDED, PLATFORM = "exact", "float-exact", "bounded", "platform"
CLASSES = (EXACT, FLOAT_EXACT, BOUNDED, PLATFORM)  # from strongest to weakest

USEFUL_REL = 1e-2  # a bound this large (1% of the value scale) guarantees nothing worth verifying


def weakest(classes) -> str:
    return max(classes, key=CLASSES.index, default=EXACT)


@dataclass(frozen=True)
class OutputPromise:
    exactness: str
    abs_bound: float  # |model - program| in the promise's dtype
    reference_bound: float  # |float64 interpreter - program|
    integer: bool = False  # range analysis proves every component an integer

    @property
    def allowed(self) -> float:
        """What verify allows between the model and the float64 reference."""
        return self.abs_bound + self.reference_bound

    @property
    def exact_after_rounding(self) -> bool:
        """An integer-valued output within less than 1/2: rounding the model's output gives the program's."""
        return self.integer and self.abs_bound < 0.5

    def useful(self, scale: float) -> bool:
        """Whether the bound says something worth checking: below 1/2 on an integer-valued output (then the
        rounded output is exact; a token off by more is wrong whatever its scale), else below USEFUL_REL of
        the value scale."""
        if self.integer:
            return self.allowed < 0.5
        return self.allowed < USEFUL_REL * max(1.0, scale)


@dataclass(frozen=True)
class Promise:
    backend: str
    dtype: str
    max_len: int
    outputs: dict[str, OutputPromise]  # "output" and every probe name
    conditions: tuple[str, ...] = ()
    certified: str = ""  # why float arithmetic is exact, where a certificate shows it
    note: str = ""

    @property
    def output(self) -> OutputPromise:
        return self.outputs["output"]

    @property
    def exactness(self) -> str:
        return weakest(p.exactness for p in self.outputs.values())

    def summary(self) -> str:
        o = self.output
        head = f"{o.exactness}, |error| <= {o.abs_bound:.3g} (+ {o.reference_bound:.3g} for the float64 reference)"
        if o.exact_after_rounding:
            head += ", exact after rounding"
        tail = [f"up to max_len {self.max_len} in {self.dtype}"]
        if self.certified:
            tail.append(self.certified)
        return "; ".join([head, *tail])

    def to_json(self) -> dict:
        return {"backend": self.backend, "dtype": self.dtype, "max_len": self.max_len,
                "outputs": {k: {"exactness": p.exactness, "abs_bound": _num(p.abs_bound),
                                "reference_bound": _num(p.reference_bound), "integer": p.integer}
                            for k, p in self.outputs.items()},
                "conditions": list(self.conditions), "certified": self.certified, "note": self.note}

    @staticmethod
    def from_json(obj: dict) -> Promise:
        """Inverse of to_json; raises (KeyError, TypeError, ValueError) on a malformed object."""
        outs = {}
        for k, p in obj["outputs"].items():
            if p["exactness"] not in CLASSES:
                raise ValueError(f"unknown exactness class {p['exactness']!r}")
            if not isinstance(p.get("integer", False), bool):
                raise TypeError("integer must be a boolean")
            outs[str(k)] = OutputPromise(p["exactness"], _float(p["abs_bound"]), _float(p["reference_bound"]),
                                         p.get("integer", False))
        if "output" not in outs:
            raise KeyError("output")
        max_len = obj["max_len"]
        if not isinstance(max_len, int) or isinstance(max_len, bool) or max_len < 1:
            raise ValueError("max_len must be a positive integer")
        return Promise(str(obj["backend"]), str(obj["dtype"]), max_len, outs,
                       tuple(str(c) for c in obj.get("conditions", ())), str(obj.get("certified", "")),
                       str(obj.get("note", "")))


def _num(x: float):
    return x if math.isfinite(x) else repr(float(x))


def _float(v) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float | str):
        raise TypeError("a bound must be a number")
    f = float(v)
    if math.isnan(f) or f < 0:
        raise ValueError("a bound must be >= 0")
    return f
