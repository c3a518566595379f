"""Batched reference interpreter of the IR: float64 or exact rationals over inputs (batch, time, dim)."""

from __future__ import annotations

from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from lsrl.diagnostics import error
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import obj_array
from lsrl.ir.recurrence import linear_recurrence


@dataclass
class RunResult:
    output: np.ndarray  # (batch, time, out_dim)
    probes: dict[str, np.ndarray]
    values: dict[int, np.ndarray] = field(default_factory=dict)  # every node, when traced

    def named(self, graph: ir.Graph) -> dict[str, np.ndarray]:
        """Traced values keyed by program variable name (first node bound to each name), then every probe
        under its own name (a probe's value wins over a different node that has the probe's name as label)."""
        out: dict[str, np.ndarray] = {}
        for n in graph.nodes:
            if n.label and n.label not in out and n.id in self.values:
                out[n.label] = self.values[n.id]
        out.update(self.probes)
        return out


class Interpreter:
    """Evaluates a graph node by node over whole sequences.

    Every op but LinState is pointwise in time, so it runs once over all steps; a state only needs its
    input, which (the graph being acyclic) is complete before the state is reached, so it scans alone.
    """

    def __init__(self, graph: ir.Graph, exact: bool = False):
        self.graph = graph
        self.exact = exact
        if exact:
            _check_exact(graph)

    def _mat(self, c):
        return c.data if self.exact else c.f64

    def run(self, x, trace: bool = False, interventions: dict | None = None) -> RunResult:
        """`interventions`: node id -> (steps, value): the node's value is set to value[:, t] at each step t
        (0-based) before anything reads it; a state then evolves from the value it was set to."""
        x = self._prepare(x)
        values: dict[int, np.ndarray] = {}
        keep = set(self.graph.roots())
        last_use = _last_uses(self.graph)
        interventions = interventions or {}
        for pos, node in enumerate(self.graph.nodes):
            args = [values[a] for a in node.args]
            if node.id in interventions and isinstance(node.op, ir.LinState):
                values[node.id] = self._scan(node.op, args[0] if args else None, x, interventions[node.id])
            else:
                values[node.id] = self._eval(node, args, x)
                if node.id in interventions:
                    steps, value = interventions[node.id]
                    values[node.id] = values[node.id].copy()
                    values[node.id][:, steps] = np.asarray(value)[:, steps]
            if not trace:  # free operands whose last reader has run
                for a in node.args:
                    if last_use[a] == pos and a not in keep:
                        values.pop(a, None)
        probes = {name: values[i] for name, i in self.graph.probes}
        return RunResult(values[self.graph.output], probes, values if trace else {})

    def _prepare(self, x) -> np.ndarray:
        x = np.asarray(x) if not isinstance(x, np.ndarray) else x
        if x.ndim != 3 or x.shape[2] != self.graph.input_dim:
            raise ValueError(f"input must have shape (batch, time, {self.graph.input_dim}), got {x.shape}")
        if self.exact:
            return x if x.dtype == object and all(isinstance(v, Fraction) for v in x.flat) else obj_array(
                [[[Fraction(v) for v in tok] for tok in seq] for seq in x.tolist()])
        return x.astype(np.float64, copy=False)

    def _eval(self, node: ir.Node, args: list[np.ndarray], x: np.ndarray) -> np.ndarray:
        op = node.op
        if isinstance(op, ir.Input):
            return x
        if isinstance(op, ir.Linear):
            out = self._const(op.bias, x)
            for m, a in zip(op.mats, args, strict=True):
                out = out + a @ self._mat(m).T
            return out
        if isinstance(op, ir.ReLU):
            return np.maximum(args[0], 0) if not self.exact else _relu_obj(args[0])
        if isinstance(op, ir.Multi):
            return args[0] * args[1]
        if isinstance(op, ir.Concat):
            return np.concatenate(args, axis=-1)
        if isinstance(op, ir.Slice):
            return args[0][..., list(op.indices)]
        if isinstance(op, ir.LinState):
            return self._scan(op, args[0] if args else None, x)
        raise TypeError(f"unknown op {op!r}")

    def _const(self, c, x: np.ndarray) -> np.ndarray:
        b, t = x.shape[:2]
        return np.broadcast_to(self._mat(c), (b, t, c.shape[0])).copy()

    def _scan(self, op: ir.LinState, u: np.ndarray | None, x: np.ndarray, patch=None) -> np.ndarray:
        drive = self._const(op.bias, x)
        if u is not None:
            drive = drive + u @ self._mat(op.B).T
        if patch is None:
            return linear_recurrence(drive, self._mat(op.A).T, self._mat(op.init))
        steps, value = patch  # run to each set step, set the state, go on from there
        out, start, s = drive.copy(), 0, self._mat(op.init)
        for t in [*sorted(steps), drive.shape[1]]:
            if t > start:
                out[:, start:t] = linear_recurrence(drive[:, start:t], self._mat(op.A).T, s)
            if t < drive.shape[1]:
                out[:, t] = np.asarray(value)[:, t]
                s, start = out[:, t], t + 1
        return out


def _relu_obj(a: np.ndarray) -> np.ndarray:
    out = a.copy()
    out[out < 0] = Fraction(0)
    return out


def _last_uses(graph: ir.Graph) -> dict[int, int]:
    last: dict[int, int] = {}
    for pos, n in enumerate(graph.nodes):
        for a in n.args:
            last[a] = pos
    return last


def _check_exact(graph: ir.Graph) -> None:
    for n in graph.nodes:
        if not all(c.exact for c in ir.coeffs_of(n.op)):
            what = f" (`{n.label}`)" if n.label else ""
            raise error("E0501", f"exact mode needs rational coefficients, but this value{what} has an "
                        "irrational one", n.span,
                        "sin/cos/sqrt/exp/log of most constants are irrational; run without --exact")


def interpret(graph: ir.Graph, x, exact: bool = False, trace: bool = False,
              interventions: dict | None = None) -> RunResult:
    """Run `graph` on inputs x of shape (batch, time, input_dim) (see Interpreter.run for interventions)."""
    return Interpreter(graph, exact=exact).run(x, trace=trace, interventions=interventions)
