"""Gated channels: the construction the SSM targets (mamba, hawk) share.

Both architectures compute, per channel d of a layer, v_d = X_d * act(Y_d) and add W v (+ bias) to a residual
stream: Mamba's y * silu(z) and Hawk's rg_lru(conv(linear_x r)) * gelu(linear_y r) or its MLP's
gelu(gate_proj r) * up_proj r. A `Plan` lists one lowered stage's channels and, per stream coordinate, the
channels it sums (in value units). Every channel is one of

- const: X and Y constants: v = gain, the constant 1;
- lin:   X = f, an affine form of the stage input at lags 0..3 (conv taps, zero before the first step),
         shifted by M past the x path's identity threshold where X passes an activation (Mamba); Y constant;
- relu:  act(k f) / k == relu(f) exactly once |k f| >= the activation's band (k from the ReLU's margin);
- prod:  X = a (+ M_a), Y = b + M_b shifted past the gate's identity threshold: v = (a + M_a)(b + M_b),
         from which W subtracts M_b a, M_a b and M_a M_b through lin and const channels;
- state: a recurrence the target realises its own way (`Plan.state`, per backend).

Shift registers (nilpotent blocks, A^4 = 0) are lin channels at lags 1-3 plus first-step indicators
[t = j] = lag_{j-1}(1) - lag_j(1). The error model (`channel_errors.py`) states each channel's rounding and
finds integer arithmetic, where the construction is exact.
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field
from fractions import Fraction
from typing import NamedTuple

import numpy as np
import torch
from lsrl.backends.base import Emitted, Target
from lsrl.backends.channel_errors import channel_values, plan_errors, reader_sums
from torch import nn

from lsrl.guarantee.facts import Facts
from lsrl.guarantee.propagate import Context, StageErrors
from lsrl.ir.coeffs import Coeffs
from lsrl.legalize.spectrum import CONV_LAGS, block_kind, blocks, sub
from lsrl.lowering.bounds import layout_bounds
from lsrl.lowering.stack import Layout, Stack

K_MAX = 2**40  # the steepest ReLU channel (a ReLU whose argument may come arbitrarily close to 0)
D_CONV = CONV_LAGS + 1
LAG0 = ((0, Fraction(1)),)
_EXACT_SUM = 2**53  # k / 2^e is a float for |k| <= 2^53: a sum staying on such a grid is exact in any order


class Form(NamedTuple):
    """An affine form's coefficients over the stage input, sparse (stage matrices are mostly zeros, and a plan
    hashes, adds and bounds a form per channel): its nonzeros (index, Fraction) by index, and the width of the
    row it comes from (0: a form over nothing, a channel distinct from one over a row of zeros)."""

    terms: tuple[tuple[int, Fraction], ...]
    width: int


EMPTY = Form((), 0)


def combine(parts, width: int) -> Form:
    """sum_i c_i f_i of (c_i, f_i) pairs, over a row of `width`."""
    acc: dict[int, Fraction] = {}
    for c, f in parts:
        if c:
            for j, v in f.terms:
                acc[j] = acc.get(j, 0) + c * v
    return Form(tuple(sorted((j, v) for j, v in acc.items() if v)), width)


def forms(c: Coeffs, by_column: bool = False) -> list[Form]:
    """Each row (or column) of a 2-D exact array as a Form (each distinct value made a Fraction once)."""
    rows, cols = c.nonzero
    vals = c.rat.num[rows, cols].tolist()
    frac = {v: Fraction(int(v), c.rat.den) for v in set(vals)}
    if by_column:  # np.nonzero's row-major order lists each column's rows in order too
        rows, cols = cols, rows
    n, width = c.shape[::-1] if by_column else c.shape
    terms: list[list] = [[] for _ in range(n)]
    for r, j, v in zip(rows.tolist(), cols.tolist(), vals, strict=True):
        terms[r].append((j, frac[v]))
    return [Form(tuple(t), width) for t in terms]


def put(row: np.ndarray, terms) -> None:
    """Write (index, value) pairs into a dense weight row."""
    for j, v in terms:
        row[j] = v


def pow2_at_least(x: float) -> Fraction:
    return Fraction(1 << max(0, math.ceil(math.log2(x)))) if x > 1 else Fraction(1)  # Fraction ** is slow


@dataclass(frozen=True)
class Activation:
    """A target's channel activations in one dtype."""

    x_ident: float  # the x path passes values >= this unchanged (-inf: the x path is linear)
    gate_ident: float  # the gate passes values >= this unchanged
    relu_zero: float  # act(k w) / k == relu(w) for |k w| >= this
    surrogate: float  # max_w |act(k w) / k - relu(w)| = surrogate / k
    slope: tuple[float, float]  # the range of act' (the surrogate's slope in w)


@dataclass
class Chan:
    kind: str  # const | lin | relu | prod | state | first (a backend's first-step indicator)
    form: Form  # over the stage input (x row before scaling)
    bias: Fraction  # the form's constant
    taps: tuple = LAG0  # (lag, weight)
    shift: Fraction = Fraction(0)  # added after the taps (conv bias)
    k: Fraction = Fraction(1)  # relu sharpness
    gate: tuple[Form, Fraction] | None = None  # prod: (form, bias) of the gate Y, its shift included in the bias
    gate_shift: Fraction = Fraction(0)
    decay: Fraction | None = None  # state: lambda
    slot: int = -1  # state: which of the backend's state parts this channel is
    exact: bool = False  # relu: act(k w) / k == relu(w) at every value w takes

    def key(self) -> tuple:
        return (self.kind, self.form, self.bias, self.taps, self.k, self.gate, self.decay, self.slot)


@dataclass
class Plan:
    """The channels of one layer and, per stream coordinate, the channels it sums (value units). Subclasses
    say how the target realises states (`state`, `state_errors`) and each channel's gain."""

    lo: np.ndarray  # range of each stage-input value (float), for the shifts
    hi: np.ndarray
    act: Activation
    chans: list[Chan] = field(default_factory=list)
    index: dict = field(default_factory=dict)
    rows: dict[int, dict[int, Fraction]] = field(default_factory=dict)
    width_in: int = 0
    width_out: int = 0
    ks: list[Fraction] = field(default_factory=list)  # mlp: each hidden ReLU's sharpness
    prod_shifts: list[tuple[Fraction, Fraction]] = field(default_factory=list)  # gate: each product's (Ma, Mb)

    CONST_X = Fraction(1)  # the const channel's X

    def __post_init__(self):
        self.chans.append(Chan("const", EMPTY, Fraction(0), shift=self.CONST_X))  # channel 0

    def gain(self, ch: Chan) -> Fraction:
        """Physical v_d over the channel's value."""
        raise NotImplementedError

    def _add(self, ch: Chan) -> int:
        d = self.index.setdefault(ch.key(), len(self.chans))  # one hash of the key (its Fractions hash slowly)
        if d == len(self.chans):
            self.chans.append(ch)
        return d

    def read(self, row: int, ch: int, coef: Fraction) -> None:
        if coef:
            r = self.rows.setdefault(row, {})
            r[ch] = r[ch] + coef if ch in r else coef

    def range_of(self, form: Form, bias: Fraction, taps) -> tuple[float, float]:
        """The range of sum_taps w f_{t-lag}; a lagged value is 0 before the first step."""
        idx, lo_terms, hi_terms = [], [], []
        for j, v in form.terms:
            c = v.numerator / v.denominator  # float(v), without numbers.Rational's dispatch
            a, b = c * float(self.lo[j]), c * float(self.hi[j])
            idx.append(j)
            lo_terms.append(a if c > 0 else b)
            hi_terms.append(b if c > 0 else a)
        flo = self._sum(idx, lo_terms) + float(bias)
        fhi = self._sum(idx, hi_terms) + float(bias)
        lo = hi = 0.0
        for lag, w in taps:
            a, b = (flo, fhi) if lag == 0 else (min(flo, 0.0), max(fhi, 0.0))
            a, b = sorted((float(w) * a, float(w) * b))
            lo, hi = lo + a, hi + b
        return lo, hi

    def _sum(self, idx: list[int], terms: list[float]) -> float:
        """The sum over the whole row with `terms` at `idx` and zeros elsewhere, as numpy's pairwise sum gives it:
        the plain sum where every order of adding gives the same float (all terms finite multiples of 1/D, D their
        largest denominator, sum |terms| D <= 2^53: every partial sum is a float), else numpy's over the row."""
        if len(terms) < 2:
            return sum(terms, 0.0)
        if all(map(math.isfinite, terms)):
            ratios = [t.as_integer_ratio() for t in terms]
            den = max((d for _, d in ratios), default=1)
            if sum(abs(n) * (den // d) for n, d in ratios) <= _EXACT_SUM:
                return sum(terms, 0.0)
        row = np.zeros(len(self.lo))
        row[idx] = terms
        return float(np.sum(row))

    def _shift(self, form, bias, taps, ident: float) -> Fraction:
        """The power of two that lifts the form past `ident` over its whole range (0 if it is already)."""
        if ident == -math.inf:
            return Fraction(0)
        lo, _ = self.range_of(form, bias, taps)
        if not math.isfinite(lo):
            raise ValueError("unbounded")
        return Fraction(0) if lo >= ident else pow2_at_least(ident - lo)

    def const(self, row: int, coef: Fraction) -> None:
        self.read(row, 0, coef)

    def lin(self, row: int, form: Form, bias: Fraction, coef: Fraction, taps=LAG0) -> None:
        if not coef or (not form.terms and not bias):
            return
        shift = self._shift(form, bias, taps, self.act.x_ident)
        self.read(row, self._add(Chan("lin", form, bias, tuple(taps), shift)), coef)
        if shift:
            self.const(row, -coef * shift)

    def relu(self, row: int, form: Form, bias: Fraction, coef: Fraction, k: Fraction, margin: float) -> None:
        exact = math.isinf(margin) or k * Fraction(margin) >= self.act.relu_zero  # nonzero arguments past the band
        self.read(row, self._add(Chan("relu", form, bias, k=k, exact=exact)), coef)

    def prod(self, row: int, fa: Form, ba: Fraction, fb: Form, bb: Fraction, coef: Fraction) -> None:
        ma, mb = self.factor_shifts(fa, ba, fb, bb)
        self.read(row, self._add(Chan("prod", fa, ba, shift=ma, gate=(fb, bb + mb), gate_shift=mb)), coef)
        # (a + Ma)(b + Mb) - Mb a - Ma b - Ma Mb = a b
        self.lin(row, fa, ba, -coef * mb)
        self.lin(row, fb, bb, -coef * ma)
        self.const(row, -coef * ma * mb)

    def factor_shifts(self, fa, ba, fb, bb) -> tuple[Fraction, Fraction]:
        return self._shift(fa, ba, LAG0, self.act.x_ident), self._shift(fb, bb, LAG0, self.act.gate_ident)

    def first_step(self, row: int, j: int, coef: Fraction) -> None:
        """coef [t = j] (j = 1..3): the constant's lags j - 1 and j (zero padding before the first step)."""
        self.lin(row, EMPTY, Fraction(1), coef, ((j - 1, Fraction(1)), (j, Fraction(-1))))

    # what a target does its own way
    def state(self, row: int, form: Form, bias: Fraction, lam: Fraction, init: Fraction, coef: Fraction) -> None:
        """coef s_t, s_t = lam s_{t-1} + w_t (w = form . input + bias), s_0 = init."""
        raise NotImplementedError

    def crosstalk(self) -> None:
        """Terms the state channels add to one another, removed (none unless a target has them)."""

    def pinned(self) -> set[int]:
        """Channels kept although no row reads them."""
        return {d for d, ch in enumerate(self.chans) if ch.kind in ("const", "first")}

    def renumber(self, new: dict[int, int]) -> None:
        """Channel d is now channel new[d] (after unread channels were dropped)."""

    def state_errors(self, ctx: Context, max_len: int, rho, mag, ints, val, exact_val, own) -> None:
        """Per state channel: its |value|, whether it is exact integer arithmetic, its per-step error."""


def stage_plan(p: Plan, st, facts: Facts) -> Plan:
    """Fill `p` with the channels of lowered stage `st`, then remove the stage input (the layer adds its
    output to the stream: each coordinate receives new - old) and merge each row's lag-0 lin channels."""
    if st.kind == "state":
        _state_plan(p, st)
    elif st.kind == "mlp":
        _mlp_plan(p, st, facts)
    else:
        _gate_plan(p, st)
    p.crosstalk()
    one = Fraction(1)
    for r in range(p.width_in):
        p.lin(r, Form(((r, one),), p.width_in), Fraction(0), -one)
    _merge_lin(p)
    return p


def _state_plan(p: Plan, st) -> None:
    B, bias, init = forms(st.B), st.bias.rat.to_fractions(), st.init.rat.to_fractions()
    for blk in blocks(st.A):
        Ab = sub(st.A, blk)
        kind = block_kind(Ab)
        if kind == "illegal":
            raise ValueError("a state transition this backend cannot realise (legalise the graph first)")
        if kind == "decay":  # s = lam s + w, or (lam = 0: a row A does not couple) s_t = w_t
            r, lam = blk[0], Ab.data[0, 0]
            if lam:
                p.state(r, B[r], bias[r], lam, init[r], Fraction(1))
            else:
                p.lin(r, B[r], bias[r], Fraction(1))
            continue
        # a shift register: s_t = sum_{i <= 3} A^i (B h_{t-i} + bias [t > i]) + sum_{j <= 3} [t = j] A^j init
        powers = _powers(Ab)
        Bb, bb, ib = [B[r] for r in blk], bias[blk], init[blk]
        for a, r in enumerate(blk):
            for i, P in enumerate(powers):
                form = combine(zip(P[a], Bb, strict=True), st.B.shape[1])
                p.lin(r, form, P[a] @ bb, Fraction(1), ((i, Fraction(1)),))
            for j in range(1, len(powers)):
                v = powers[j][a] @ ib
                if v:
                    p.first_step(r, j, v)


@functools.lru_cache(maxsize=64)
def _powers(A: Coeffs) -> list[np.ndarray]:
    """I, A, .., A^3 of a shift-register block (small), as Fractions; the blocks of a stage's delay lines repeat."""
    powers = [np.eye(A.shape[0], dtype=object) * Fraction(1)]
    for _ in range(CONV_LAGS):
        powers.append(powers[-1] @ A.data)
    return powers


def _mlp_plan(p: Plan, st, facts: Facts) -> None:
    C, E, D = forms(st.C), forms(st.E), forms(st.D, by_column=True)  # D by hidden unit
    c, e = st.c.rat.to_fractions(), st.e.rat.to_fractions()
    sharp = relu_sharpness(st, D, facts, p.act.relu_zero)
    p.ks = [k for k, _ in sharp]
    for r, form in enumerate(C):
        p.lin(r, form, c[r], Fraction(1))
    for k, col in enumerate(D):
        for r, d in col.terms:
            p.relu(r, E[k], e[k], d, *sharp[k])


def _gate_plan(p: Plan, st) -> None:
    P, U, V, Q = forms(st.P), forms(st.U), forms(st.V), forms(st.Q, by_column=True)  # Q by product
    u, v = st.u.rat.to_fractions(), st.v.rat.to_fractions()
    for r, form in enumerate(P):
        p.lin(r, form, Fraction(0), Fraction(1))
    for k, col in enumerate(Q):
        p.prod_shifts.append(p.factor_shifts(U[k], u[k], V[k], v[k]))
        for r, q in col.terms:
            p.prod(r, U[k], u[k], V[k], v[k], q)


def relu_sharpness(st, D: list[Form], facts: Facts, relu_zero: float) -> list[tuple[Fraction, float]]:
    """Per hidden unit (D: its column): (k, margin) with k * margin > relu_zero (act(k w) / k is then relu(w)
    exactly: every nonzero argument lies past the band |w| <= relu_zero / k), else K_MAX."""
    out = []
    for col in D:
        r = col.terms[0][0]
        node = next(s.node for s in st.out.segments if s.start <= r < s.start + s.dim)
        m = facts.relu_margin(node)
        k_m = Fraction(1) if math.isinf(m) else K_MAX if m <= 0 else pow2_at_least(relu_zero / m)
        if not math.isinf(m) and 0 < m and k_m * Fraction(m) <= relu_zero:
            k_m *= 2  # the band |w| < relu_zero / k must end strictly below the margin
        out.append((min(k_m, Fraction(K_MAX)), m))
    return out


def _merge_lin(p: Plan) -> None:
    """Fold every row's lag-0 lin channels into one (the old value's removal joins the row's own form)."""
    for r, reads in list(p.rows.items()):
        lins = [d for d in reads if p.chans[d].kind == "lin" and p.chans[d].taps == LAG0]
        if len(lins) < 2:
            continue
        parts, bias = [], Fraction(0)
        for d in lins:
            ch, coef = p.chans[d], reads.pop(d)
            reads[0] = reads.get(0, Fraction(0)) + coef * ch.shift  # undo its shift removal
            parts.append((coef, ch.form))
            bias += coef * ch.bias
        p.lin(r, combine(parts, p.width_in), bias, Fraction(1))
    _drop_unread(p)


def _drop_unread(p: Plan) -> None:
    """Drop the channels nothing reads and nothing pins."""
    used = p.pinned() | {d for reads in p.rows.values() for d, c in reads.items() if c}
    keep = [d for d in range(len(p.chans)) if d in used]
    new = {d: i for i, d in enumerate(keep)}
    p.chans = [p.chans[d] for d in keep]
    p.index = {k: new[d] for k, d in p.index.items() if d in new}
    p.rows = {r: {new[d]: c for d, c in reads.items() if c} for r, reads in p.rows.items()}
    p.renumber(new)


def stream_ranges(layout: Layout, facts: Facts, who: str) -> tuple[np.ndarray, np.ndarray]:
    """Per stream coordinate of `layout`: the proven range of its value (a located E0601 if unbounded)."""
    lo, hi = layout_bounds(layout, facts.lo), layout_bounds(layout, facts.hi)
    for s in layout.segments:
        if not np.isfinite(np.concatenate([lo[s.start:s.start + s.dim], hi[s.start:s.start + s.dim]])).all():
            facts.bound(s.node, who)
    return lo, hi


class ChannelBackend:
    """What the gated-channel backends share: a residual stream of layers over legalised (diagonal [0, 1])
    states, one plan per lowered stage, and the plans' error model."""

    prefix = "layers"
    target = Target(transitions="diagonal01")
    name: str
    # what an invertible change of basis acts on (lsrl.interpretability.obfuscate; lsrl.backends.base.linear_basis)
    linear_basis = ("the residual stream, one basis for every layer (the blocks add into it): every block's "
                    "input projections and the read-out heads read it, its output projections write it; the first "
                    "half-layer reads the embedding as it was and writes the change of basis of its input too")

    def plans(self, stack: Stack, facts: Facts | None, make) -> list[Plan]:
        """One plan per stage: `make(lo, hi, width_in, width_out)` gives the empty plan for a stage input
        with those proven ranges."""
        if facts is None:
            raise ValueError(f"the {self.name} backend needs range facts")
        layout, plans = stack.input_layout, []
        for st in stack.stages:
            lo, hi = stream_ranges(layout, facts, f"the {self.name} backend's channel shifts")
            plans.append(stage_plan(make(lo, hi, layout.width, st.out.width), st, facts))
            layout = st.out
        return plans

    def stage_errors(self, emitted: Emitted, i: int, stage, ctx: Context) -> StageErrors:
        # the propagation asks for the stages in order, so the residues of stages < i are this pass's
        residues = emitted.constants.setdefault("residues", {})
        stale = sum(v for j, v in residues.items() if j < i)
        se = plan_errors(emitted.constants["plans"][i], stage, ctx, emitted.constants["max_len"], stale)
        residues[i] = se.residue
        return se

    def sum_bound(self, stack: Stack, emitted: Emitted, magnitudes, x_bound: float) -> float:
        return math.nan  # the propagated bound (zero for integer arithmetic) covers the channels

    # ------------------------------------------------------------------ change of basis (obfuscation)

    def constant_row(self, config: dict) -> int | None:
        """The stream coordinate the embedding sets to 1 (None: the stream has none)."""
        return None

    def basis_layers(self, config: dict) -> tuple[list[tuple[int, tuple[int, ...], tuple[int, ...]]], list[int]]:
        """One basis for the whole stream, which every stage's units take: (width, pinned columns, pinned rows).
        The constant's coordinate, if any, is pinned (row and column: it holds the constant alone, which an HF
        export's RMSNorm relies on)."""
        const = self.constant_row(config)
        pins = () if const is None else (const,)
        return [(config["hidden"], pins, pins)], [0] * len(config["hiddens"])

    def stream_io(self, module) -> list[tuple[list[nn.Linear], list[nn.Linear]]]:
        """Per half-layer, in order: (the linear maps reading the stream, those writing it)."""
        raise NotImplementedError

    def stage_io(self, module, stages) -> list[tuple[list[nn.Linear], list[nn.Linear]]]:
        """Per lowered stage: (the linear maps reading the stream, those writing it)."""
        raise NotImplementedError

    def slot_rows(self, config: dict) -> list[int]:
        """The stream rows whose values the state slots restart from (interventions)."""
        raise NotImplementedError

    # the input channels the first half-layer gets (`rebased`): X = x_i + shift, gain: the channel carries gain x
    # its value
    input_gain: float = 1.0

    def input_shift(self, lo: float) -> float:
        """The shift of an input channel's X for an input coordinate whose values are >= lo."""
        return 0.0

    def with_input_channels(self, module, config: dict, inputs: list, shifts: list[float]):
        """The module whose first half-layer has one more channel per (coordinate i, column c) of `inputs`: X =
        the stream's coordinate i plus its shift, gate constant, written to the stream as c (value units)."""
        raise NotImplementedError

    def input_columns(self, config: dict, M: np.ndarray) -> list[tuple[int, np.ndarray]]:
        """Per input coordinate i of the embedding with M e_i != e_i: (i, (M - I) e_i)."""
        stream = list(config.get("stream") or range(config["hidden"]))
        out = []
        for i in stream[:config["input_dim"]]:
            col = M[:, i].copy()
            col[i] -= 1
            if col.any():
                out.append((i, col))
        return out

    def rebased(self, module, config: dict, bases: list, mul, x_lo=None):
        """The module over the stream in the basis r' = M r (`bases` = [(M, M^-1)], float64) from the first
        half-layer's output on: every later reader's weight multiplied by M^-1 on the right (a bias stays), every
        writer's weight and bias by M on the left. The embedding is not touched: the first half-layer still
        reads it as it was (r_0) and must write M r_1 - r_0 = M (r_1 - r_0) + (M - I) r_0, so it gets one more
        channel per input coordinate that M moves, passing that coordinate through (shifted past its
        activation's identity threshold, `x_lo`: the input's lower bounds) to the column (M - I) e_i.
        config["unbasis"] records the rows of M^-1 that give the state slots' rows (`stream_row`). `mul(a, b)`
        multiplies two float64 arrays (the caller's, which checks exactness where it must)."""
        ((M, Mi),) = bases
        io = self.stream_io(module)
        with torch.no_grad():
            for k, (readers, writers) in enumerate(io):
                for lin in readers if k else ():  # the first half-layer reads the embedding, r_0
                    lin.weight.data = torch.from_numpy(mul(_f64(lin.weight), Mi)).to(lin.weight.dtype)
                for lin in writers:
                    lin.weight.data = torch.from_numpy(mul(M, _f64(lin.weight))).to(lin.weight.dtype)
                    if lin.bias is not None:
                        lin.bias.data = torch.from_numpy(mul(M, _f64(lin.bias)[:, None])[:, 0]).to(lin.bias.dtype)
            for lin in [module.readout, *module.probe_heads]:
                M_read = Mi if io else np.eye(len(Mi))  # no layer: the heads read the embedding
                lin.weight.data = torch.from_numpy(mul(_f64(lin.weight), M_read)).to(lin.weight.dtype)
        inputs = self.input_columns(config, M) if io else []
        module, config = self.with_input_channels(module, config, inputs,
                                                  [self.input_shift(float(x_lo[i])) for i, _ in inputs])
        unbasis = [[r, [[int(k), float(Mi[r, k])] for k in np.flatnonzero(Mi[r])]]
                   for r in sorted(set(self.slot_rows(config)))]
        config = {**config, "unbasis": unbasis}
        rebuilt = self.build_module(config).to(next(module.parameters()).dtype)
        rebuilt.load_state_dict(module.state_dict())
        return rebuilt, config

    def basis_sums(self, compiled, module, bases: list, contexts) -> tuple[float, str]:
        """The largest |partial sum| of the sums a change of basis r' = M r (integer M, M^-1) touches in the
        rebased `module`, in units of each sum's quantum, or (inf, why) where they are not integer arithmetic.

        Where the compiled model holds every stream value as an exact integer (`contexts`: the error analysis
        of each stage, lsrl.guarantee.propagate, and whether the last layer's values are exact integers), r' =
        M r is an integer vector; a reader's partial sums are multiples of its row's smallest nonzero weight
        bit (the weights are dyadic), a writer's (value units: channel d carries gain_d x its value, its
        weights are integers over gain_d) integers. While every one stays within the dtype's 2^(p+1) of its
        quantum, the rebased model computes every reader's value exactly and keeps r' = M r exactly: its
        channels compute what the compiled model's do, bit for bit, and its promise stands."""
        from lsrl.lowering.bounds import layout_bounds

        ((M, _),) = bases
        ctxs, errs, last_exact = contexts
        config = compiled.emitted.config
        H, const, absM = config["hidden"], self.constant_row(config), np.abs(M)
        max_len = compiled.emitted.constants["max_len"]

        def stream(values: np.ndarray, rebased: bool = True) -> np.ndarray:
            r = np.zeros(H)
            r[:len(values)] = values
            if const is not None:
                r[const] = 1.0
            return absM @ r if rebased else r

        worst = 0.0
        stages = compiled.stack.stages
        x_lo, x_hi = stream_ranges(compiled.stack.input_layout, compiled.facts, "the change of basis")
        inputs = self.input_columns(config, M)
        for i, (p, st, (readers, writers)) in enumerate(zip(compiled.emitted.constants["plans"], stages,
                                                            self.stage_io(module, stages), strict=True)):
            ctx = ctxs[i]
            if not ctx.int_h.all():
                return math.inf, f"layer {i} reads a value that is not an exact integer in the compiled model"
            if errs[i].residue:
                return math.inf, f"layer {i} may leave rounding in the stream coordinates it clears"
            r_in = stream(ctx.h, rebased=i > 0)  # the first stage reads the embedding as it was
            for lin in readers:
                worst = max(worst, reader_sums(_f64(lin.weight), None if lin.bias is None else _f64(lin.bias), r_in))
            val, exact = channel_values(p, st, ctx, max_len)
            gain = np.array([float(p.gain(ch)) for ch in p.chans])
            if i == 0 and inputs:  # the input channels `rebased` added: X = x_i + shift, exact integers
                shifts = [self.input_shift(float(x_lo[j])) for j, _ in inputs]
                val = np.concatenate([val, [max(abs(x_lo[j]), abs(x_hi[j])) + s for (j, _), s in zip(inputs, shifts,
                                                                                                     strict=True)]])
                exact = np.concatenate([exact, np.ones(len(inputs), dtype=bool)])
                gain = np.concatenate([gain, np.full(len(inputs), self.input_gain)])
            n = len(gain)
            for lin in writers:
                W = _f64(lin.weight)
                C = W[:, :n] * gain  # value units
                b = np.zeros(H) if lin.bias is None else _f64(lin.bias)
                if W[:, n:].any() or not (np.array_equal(C, np.round(C)) and np.array_equal(b, np.round(b))):
                    return math.inf, f"layer {i} writes the stream with weights that are not integers in value units"
                if (C[:, ~exact] != 0).any():
                    return math.inf, f"layer {i} writes a channel whose value is not an exact integer"
                worst = max(worst, float((np.abs(C) @ val + r_in + np.abs(b)).max(initial=0.0)))
        if not last_exact.all():
            return math.inf, "the last layer holds a value that is not an exact integer in the compiled model"
        last = stages[-1].out if stages else compiled.stack.input_layout
        r_last = stream(layout_bounds(last, compiled.facts.magnitudes), rebased=bool(stages))
        for head in [module.readout, *module.probe_heads]:
            worst = max(worst, reader_sums(_f64(head.weight), _f64(head.bias), r_last))
        return worst, ""


def stream_row(out: torch.Tensor, row: int, unbasis: dict) -> torch.Tensor:
    """Stream row `row`'s value from the units `out` (batch, width): the unit itself, or where obfuscation changed
    the stream's basis (units r' = M r), the row of M^-1 that `unbasis` holds for it ({row: (units, coefs)})."""
    if row not in unbasis:
        return out[:, row]
    idx, coef = unbasis[row]
    return out[:, idx] @ torch.tensor(coef, dtype=out.dtype, device=out.device)


def unbasis_of(config: dict) -> dict[int, tuple[list[int], list[float]]]:
    """config["unbasis"] (rebased streams only) as {row: (units, coefs)}."""
    return {int(r): ([int(k) for k, _ in pairs], [float(c) for _, c in pairs])
            for r, pairs in config.get("unbasis") or []}


def permuted_unbasis(config: dict, p) -> list:
    """config["unbasis"] over a stream permuted by p (logical coordinate j -> physical p[j])."""
    return [[int(p[r]), [[int(p[k]), c] for k, c in pairs]] for r, pairs in config.get("unbasis") or []]


def _f64(t: torch.Tensor) -> np.ndarray:
    return t.detach().double().numpy().copy()
