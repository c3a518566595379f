"""Periodic input-free states as a step counter and an exact decoder, for targets without rotations.

A state s_t = A s_{t-1} + bias whose orbit repeats with period n shows its readers v_{(t-1) mod n} (the
orbit of lsrl/passes/lift_orbits.py). A diagonal [0, 1] target has no periodic recurrence, but it counts
exactly: t = t_{-1} + 1. For t <= max_len, s_t = M q_t with M's columns the orbit and q_t the one-hot of
(t - 1) mod n, built from t by ReLUs that are exact at integers, in one of two ways:

- flat: q_j = sum over t' = j + 1 (mod n), t' <= max_len, of the hat relu(1 - relu(t - t') - relu(t' - t)):
  3 max_len units in 2 layers;
- binary: m = t - 1, then for c = n 2^J, ..., 2n, n (the largest c <= max_len - 1 first), subtract c when
  m >= c: m -= c step(m - c), step(x) = 1 - relu(1 - relu(x + 1)) (0/1 at integers); m ends in [0, n) and
  q_j = relu(1 - relu(m - j) - relu(j - m)): 2 (J + 1) + 3 n units in 2 (J + 2) layers.

Both keep every intermediate value within [-2 max_len, max_len] (range analysis sees that too: each step
is clamped to [0, 1]), so float arithmetic on them is integer arithmetic. The smaller (in units) is used.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass

import numpy as np

from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs
from lsrl.passes import matrices as mx
from lsrl.passes.lift_orbits import orbit
from lsrl.passes.rewrite import Rewriter


@dataclass(frozen=True)
class Decoder:
    kind: str  # "flat" or "binary"
    period: int
    units: int
    layers: int


def choose(n: int, max_len: int) -> Decoder:
    flat = Decoder("flat", n, 3 * max_len, 2)
    steps = _subtrahends(n, max_len)
    binary = Decoder("binary", n, 2 * len(steps) + 3 * n, 2 * len(steps) + 2)
    return min(flat, binary, key=lambda d: (d.units, d.layers))


def _subtrahends(n: int, max_len: int) -> list[int]:
    """n 2^J, ..., n: the multiples of n the binary decoder subtracts (none when max_len - 1 < n)."""
    if max_len - 1 < n:
        return []
    J = int(math.floor(math.log2((max_len - 1) / n)))
    while n * 2 ** (J + 1) <= max_len - 1:  # guard the float log
        J += 1
    return [n * 2 ** j for j in range(J, -1, -1)]


def _lin(rw: Rewriter, rows, bias, *args: int) -> int:
    """A Linear node over `args`, its matrix `rows` split by the args' dims."""
    M = mx.coeffs(rows)
    widths = [rw.dim(a) for a in args]
    return rw.add(ir.Linear(tuple(mx.split_columns(M, widths)), mx.coeffs(bias)), args)


def _relu(rw: Rewriter, x: int) -> int:
    return rw.add(ir.ReLU(), (x,))


def _flat(rw: Rewriter, t: int, n: int, max_len: int) -> int:
    ts = np.arange(1, max_len + 1)
    r = _relu(rw, _lin(rw, np.concatenate([np.ones((max_len, 1)), -np.ones((max_len, 1))]).astype(int),
                       np.concatenate([-ts, ts]), t))  # [t - t', t' - t] per t'
    hat = _relu(rw, _lin(rw, -np.hstack([np.eye(max_len, dtype=int)] * 2), np.ones(max_len, dtype=int), r))
    S = np.zeros((n, max_len), dtype=int)
    S[(ts - 1) % n, ts - 1] = 1
    return _lin(rw, S, np.zeros(n, dtype=int), hat)


def _binary(rw: Rewriter, t: int, n: int, max_len: int) -> int:
    m, m_rows, m_bias = (t,), [[1]], -1  # m = m_rows . args + m_bias
    for c in _subtrahends(n, max_len):
        a = _relu(rw, _lin(rw, [sum(m_rows, [])], [m_bias - c + 1], *m))
        b = _relu(rw, _lin(rw, [[-1]], [1], a))
        m, m_rows, m_bias = (*m, b), [*m_rows, [c]], m_bias - c  # m - c + c relu(1 - a) = m - c step
    row = sum(m_rows, [])
    js = np.arange(n)
    r = _relu(rw, _lin(rw, np.array([row] * n + [[-x for x in row]] * n), np.concatenate([-js, js]) +
                       np.concatenate([[m_bias] * n, [-m_bias] * n]), *m))  # [m - j, j - m]
    return _relu(rw, _lin(rw, -np.hstack([np.eye(n, dtype=int)] * 2), np.ones(n, dtype=int), r))


class Phases:
    """The one-hots of (t - 1) mod n a graph's periodic states need, built once per period: a period that
    divides a longer one needed too is a sum of that one's entries (one decoder for tok2tok's T and 2 T)."""

    def __init__(self, periods: list[int], max_len: int):
        self.periods, self.max_len = sorted(set(periods)), max_len
        self.built: dict[int, int] = {}
        self.decoders: list[Decoder] = []

    def onehot(self, rw: Rewriter, n: int) -> int:
        big = max(p for p in self.periods + [n] if p % n == 0)
        if big not in self.built:
            t = rw.add(ir.LinState(Coeffs.eye(1), None, mx.coeffs([1]), mx.zeros(1)), ())
            dec = choose(big, self.max_len)
            self.built[big] = (_flat if dec.kind == "flat" else _binary)(rw, t, big, self.max_len)
            self.decoders.append(dec)
        if big == n:
            return self.built[big]
        fold = np.zeros((n, big), dtype=int)
        fold[np.arange(big) % n, np.arange(big)] = 1
        return _lin(rw, fold, np.zeros(n, dtype=int), self.built[big])


@functools.lru_cache(maxsize=256)  # asked per block to refuse, to plan the phases and to decode (ops hash)
def _orbit(op: ir.LinState):
    return orbit(op) if op.B is None else None


def period(op: ir.LinState) -> int | None:
    """The period of an input-free state's orbit, or None."""
    orb = _orbit(op)
    return None if orb is None else len(orb)


def decode_periodic(rw: Rewriter, op: ir.LinState, phases: Phases) -> int | None:
    """A node equal to the input-free state `op` up to max_len (counter and decoder), or None when its orbit
    is not periodic (within lift_orbits.MAX_ORBIT steps)."""
    orb = _orbit(op)
    if orb is None:
        return None
    M = mx.coeffs(np.stack(orb, axis=1))
    if len(orb) == 1:  # a constant
        return rw.add(ir.Linear((), Coeffs(M.data[:, 0])), ())
    return rw.add(ir.Linear((M,), mx.zeros(op.A.shape[0])), (phases.onehot(rw, len(orb)),))
