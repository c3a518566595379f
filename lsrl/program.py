"""A compiled program: the IR graph plus its input spec (with domain), the parameter values used and the input
generator it names."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from lsrl.cached import cached
from lsrl.diagnostics import Span
from lsrl.ir.coeffs import Scalar, format_scalar
from lsrl.ir.graph import Graph


@dataclass(frozen=True)
class Domain:
    """Values one input component may take: a finite set, or the real interval [lo, hi]."""

    kind: str  # "set" | "interval"
    values: tuple[Scalar, ...]  # the set, or (lo, hi)

    def __str__(self) -> str:
        if self.kind == "interval":
            return f"[{format_scalar(self.values[0])}, {format_scalar(self.values[1])}]"
        return "{" + ", ".join(format_scalar(v) for v in self.values) + "}"

    def sample(self, rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
        if self.kind == "interval":
            lo, hi = float(self.values[0]), float(self.values[1])
            return rng.uniform(lo, hi, size=shape)
        return rng.choice(np.array([float(v) for v in self.values]), size=shape)

    @property
    def bounds(self) -> tuple[Scalar, Scalar]:
        return (self.values[0], self.values[1]) if self.kind == "interval" else (min(self.values),
                                                                                   max(self.values))


@dataclass(frozen=True)
class InputSpec:
    name: str
    dim: int
    domain: Domain | None
    span: Span | None = None

    def sample(self, rng: np.random.Generator, batch: int, length: int) -> np.ndarray:
        """Random inputs (batch, length, dim) from the declared domain (standard normal if none)."""
        if self.domain is None:
            return rng.standard_normal((batch, length, self.dim))
        return self.domain.sample(rng, (batch, length, self.dim))


@dataclass(frozen=True)
class GeneratorSpec:
    """The input generator a program names, `generator NAME(ARG = VALUE, ...)`: a generator registered in
    lsrl.interpretability.generators, or "module:function"; each argument's compile-time value (an exact
    rational or a float; vectors and matrices as tuples)."""

    name: str
    args: dict[str, object] = field(default_factory=dict)
    span: Span | None = None  # the declaration
    name_span: Span | None = None
    arg_spans: dict[str, Span] = field(default_factory=dict)  # each argument's `NAME = VALUE`

    def python_args(self) -> dict[str, object]:
        """The arguments as a generator function receives them: ints for integral values, floats otherwise,
        lists for vectors."""
        return {k: python_value(v) for k, v in self.args.items()}

    def __str__(self) -> str:
        return f"{self.name}(" + ", ".join(f"{k} = {_fmt(v)}" for k, v in self.args.items()) + ")"


def python_value(v):
    """A compile-time value as plain Python: integral rationals as int, other rationals as float, vectors as
    lists."""
    if isinstance(v, (tuple, list, np.ndarray)):
        return [python_value(x) for x in v]
    if isinstance(v, Fraction):
        return int(v) if v.denominator == 1 else float(v)
    if isinstance(v, np.integer):
        return int(v)
    if isinstance(v, np.floating):
        return float(v)
    return v


@dataclass(frozen=True)
class Program:
    graph: Graph
    input: InputSpec
    params: dict[str, object] = field(default_factory=dict)
    file: str = "<input>"
    source_sha256: str = ""
    warnings: tuple = ()  # Diagnostics of severity "warning" (unused bindings), in source order
    generator: GeneratorSpec | None = None  # `generator NAME(...)`, if the program names one

    @cached
    def reference_graph(self) -> Graph:
        """The graph whose float64 interpretation models are checked against: `graph` with its periodic states
        on their exact orbits (lsrl.passes.exact_orbits), as the compiler realises them."""
        from lsrl.passes import exact_orbits

        return exact_orbits(self.graph)

    def describe_params(self) -> str:
        return ", ".join(f"{k}={_fmt(v)}" for k, v in self.params.items())


def _fmt(v) -> str:
    if isinstance(v, (Fraction, float)):
        return format_scalar(v)
    if isinstance(v, (np.ndarray, tuple, list)):
        return "[" + ", ".join(_fmt(x) for x in (v.tolist() if isinstance(v, np.ndarray) else v)) + "]"
    return str(v)
