"""Constructions shared by the gated-RNN backends (gru, lstm): scaled tanh units and sigmoid switches.

Every value is carried at a small power-of-two scale eps (eps |v| <= 2^-28), where tanh(x) == x in float32
and float64, so a tanh unit holds eps * v exactly and the next layer reads it back with weights 1/eps
(exact). Sigmoid gates are driven to +-SAT (sigmoid exactly 1 or 0 in both dtypes). On these two facts the
backends build four kinds of unit, each a small set of physical units read through a decode row:

- value   (always on)  eps * v, where v is an affine function of the layer input, plus, for states, a
          recurrence through the layer's own previous units (s_t = A s_{t-1} + ...) and an init term read
          through a constant unit (as in the rnn backend);
- switch  sigma(s) * eps * v: a ReLU is v = s/k = w with sharpness k (exactly relu(w) once |k w| >= SAT, and
          between 0 and w inside that band); a product with a 0/1 flag b is s = K (b - 1/2); a product with a
          factor of few known values a_1 < ... < a_m is a_1 v + sum_i (a_i - a_{i-1}) [u > theta_i] v; any
          other product is (2/delta) v tanh(delta u / 2) from the pair s = +-delta u (bounded error).
- const   eps (1 from the first step on; 0 before it, since the initial state is 0).

LSTM realises a switch as one unit (o = sigma(s), g = eps v, i = 1, f = 0); GRU as two, a and c, with
h_a = sigma(s) eps v + sigma(-s) h_a' (z = sigma(-s)) and h_c = sigma(-s) h_a' (r = sigma(-s) on a copy of
h_a'): h_a - h_c = sigma(s) eps v. Each backend only maps these units to its gate rows.

A GRU switch that is off holds h_a through torch's (h_a' - n) z + n, which rounds: an accumulator summing such
switches would gather that rounding at every step. So on GRU an accumulator row s_t = s_{t-1} + B (V_t + D sw_t)
reading the switches of the layer before (V: the pass-through part, D sw: the switch part) is carried as
P_t = s_t - B D sw_t = P_{t-1} + B V_t + B D sw_{t-1}, plus value units holding the current B D sw_t (read once,
never summed). sw_{t-1} comes from a delayed twin of each switch in the layer before: d_t = r_t * h_b(t-1), where a
value unit b holds eps v and the reset gate r_t = sigma(s_{t-1}) reads b too: exactly 0 when the switch was off,
exactly eps v_{t-1} when it was on, and the same surrogate as the switch inside its band (`_latch_plan`).
"""

from __future__ import annotations

import functools
import math
from dataclasses import dataclass, field, replace
from decimal import Decimal, localcontext
from fractions import Fraction

import numpy as np
import torch
from lsrl.backends.base import SILU_SLOPE, Emitted, layers_config, placements

from lsrl.diagnostics import Note, error
from lsrl.guarantee.facts import Facts
from lsrl.guarantee.propagate import BOUNDED_I, FLOAT_EXACT_I, Context, StageErrors, dot_rounding, rounding
from lsrl.ir.graph import Graph
from lsrl.ir.rational import RatArray
from lsrl.lowering.bounds import layout_bounds, stack_bounds
from lsrl.lowering.stack import GateStage, MLPStage, Stack, StateStage

SAT = 1024  # |pre-activation| >= SAT: sigmoid is exactly 1 or 0 in float32 and float64
EPS_LOG2 = -28  # eps |v| <= 2^-28 (float64's tanh(x) == x holds up to 1.35e-8 ~ 2^-26.1; float32's to 3.5e-4)
K_MAX = 2**40  # the steepest switch: k / eps and k |w| stay far below float32's 3.4e38
SURROGATE = 0.2785  # max_w |w sigmoid(k w) - relu(w)| = 0.2785 / k
SIGMOID_ULPS = 4  # platform condition on torch.sigmoid's accuracy (approximate products only)


def pow2_at_most(x: float) -> Fraction:
    """The largest power of two <= x (x > 0 finite)."""
    if type(x) is float:  # x = m 2^e with 1/2 <= m < 1
        return _pow2(math.frexp(x)[1] - 1)
    e = math.floor(math.log2(x))
    p = Fraction(2) ** e
    if p > x:
        p /= 2
    elif 2 * p <= x:
        p *= 2
    return p


@functools.cache
def _pow2(e: int) -> Fraction:
    return Fraction(2) ** e


def scale_for(bound: float) -> Fraction:
    """eps for a value with |v| <= bound: eps * bound <= 2^EPS_LOG2."""
    return Fraction(2) ** EPS_LOG2 / (pow2_at_most(bound) * 2 if bound > 0 else 1)


@dataclass
class Unit:
    """One logical unit: out = gate * eps * (drive . src + drive_bias) (+ eps * recurrence), where gate is 1
    (switch None) or sigmoid(switch . src + switch_bias)."""

    eps: Fraction
    drive: dict[int, Fraction]
    drive_bias: Fraction = Fraction(0)
    switch: dict[int, Fraction] | None = None
    switch_bias: Fraction = Fraction(0)
    recur: dict[int, Fraction] = field(default_factory=dict)  # logical unit -> coefficient (value units)
    recur_bias: Fraction = Fraction(0)
    # a delayed twin (GRU): a reset gate over the layer's own previous values, r = sigmoid(gate . values +
    # gate_bias), which scales the recurrence: out = eps * r * (recur . values)
    gate: dict[int, Fraction] | None = None
    gate_bias: Fraction = Fraction(0)


@dataclass
class GatedLayer:
    """The logical units of one layer over `src` (candidate rows = stage matrices @ previous decoder) and the
    decode of the stage's values: value_r = sum over (unit, coef) of coef * out_unit / eps_unit."""

    src: RatArray
    src_bias: RatArray
    n_values: int
    units: list[Unit] = field(default_factory=list)
    reads: dict[int, list[tuple[int, Fraction]]] = field(default_factory=dict)  # value row -> (unit, coef)
    delayed: dict[int, int] = field(default_factory=dict)  # switch unit -> its delayed twin
    switched: np.ndarray | None = None  # per value row: a bound of its switch part (where it has twins)

    def add(self, unit: Unit) -> int:
        self.units.append(unit)
        return len(self.units) - 1

    def read(self, row: int, unit: int, coef: Fraction = Fraction(1)) -> None:
        self.reads.setdefault(row, []).append((unit, coef))


@dataclass
class StageInfo:
    """What emission chose for a stage, for its error statement."""

    sharpness: list[float] = field(default_factory=list)  # mlp: per hidden ReLU
    shifts: list[float] = field(default_factory=list)  # mlp: per hidden ReLU, its switch point -shift
    gains: list[float] = field(default_factory=list)  # gate: per product
    switches: list[int] = field(default_factory=list)  # gate: switch units per product
    deltas: list[float] = field(default_factory=list)  # gate: per product, delta of an approximate one (0: exact)
    on_u: list[bool] = field(default_factory=list)  # gate: per product, whether the switch factor is the first
    below: list[float] = field(default_factory=list)  # gate: per product, switch-factor error keeping it exact
    zeroes: list[int] = field(default_factory=list)  # gate: per product, StageErrors.zero_products
    latched: list[int] = field(default_factory=list)  # state: the rows carried as P plus the current switches
    mixed: list[int] = field(default_factory=list)  # state: the latched rows that also read values (not switches)
    current: list[float] = field(default_factory=list)  # state: per row, the bound of its current switch part


@dataclass
class Source:
    """What a layer reads from the one before: `dec` maps the previous stage's values to its physical units; where
    that layer has delayed twins, `switched` is the part of `dec` reading switches, `delayed` reads the twins with
    the same coefficients (the switch parts one step late), and `bounds` bounds each row's switch part."""

    dec: RatArray
    switched: RatArray | None = None
    delayed: RatArray | None = None
    bounds: np.ndarray | None = None


def _value_unit(layer: GatedLayer, row: int, bound: float) -> int:
    return layer.add(Unit(scale_for(bound), {row: Fraction(1)}))


def _value_units(layer: GatedLayer, rows: range, bounds: np.ndarray) -> list[int]:
    out = []
    for r in rows:
        out.append(_value_unit(layer, r, bounds[r]))
        layer.read(r, out[-1])
    return out


def _switch(layer: GatedLayer, value_row: int, bound: float, switch: dict[int, Fraction], switch_bias: Fraction,
            into: int, coef: Fraction) -> int:
    u = layer.add(Unit(scale_for(bound), {value_row: Fraction(1)}, switch=switch, switch_bias=switch_bias))
    layer.read(into, u, coef)
    return u


def _twin(layer: GatedLayer, switch: int, held: int, gate: dict[int, Fraction], gate_bias: Fraction) -> None:
    """The delayed twin of a switch over its drive v: r * eps v_{t-1}, the previous v read from the value unit
    `held`, the reset gate r = sigmoid(gate . values + gate_bias) the switch's pre-activation one step late."""
    x = layer.units[switch]
    layer.delayed[switch] = layer.add(Unit(x.eps, {}, recur={held: Fraction(1)}, gate=gate, gate_bias=gate_bias))


def _bounds_of(M: RatArray, bias: RatArray, h: np.ndarray) -> np.ndarray:
    return np.abs(M.to_float()) @ h + np.abs(bias.to_float())


def _require(bounds: np.ndarray, graph: Graph, node: int, backend: str) -> None:
    if not np.all(np.isfinite(bounds)):
        n = graph[node]
        name = f"`{n.label}`" if n.label else f"this value (%{node})"
        raise error("E0601", f"the {backend} backend needs a bound on {name} (its tanh units carry values at a "
                    "scale chosen from it), but range analysis cannot bound it", n.span,
                    "declare a bounded input domain, or pass a smaller --max-len if it grows with the length",
                    (Note(f"tanh(x) == x only for |x| <= 2^{EPS_LOG2 + 1}: every value is scaled into that band"),))


def state_layer(graph: Graph, st: StateStage, src: Source, h: np.ndarray, facts: Facts, backend: str,
                dtype: torch.dtype, latched=()):
    """One value unit per state component, its recurrence through the layer's own units (A), and the init
    through a constant unit. A `latched` row s is carried as P = s - B D sw (its drive reading the previous
    switches' delayed twins), plus a value unit holding the current B D sw."""
    width, B, rows = st.out.width, st.B.rat, sorted(latched)
    bounds = layout_bounds(st.out, facts.magnitudes)
    current = np.zeros(width)
    if rows:
        pick = RatArray.from_entries((len(rows), width), {(j, r): Fraction(1) for j, r in enumerate(rows)})
        read = pick @ B
        now = read @ src.switched  # the current switch part of each latched row
        drive = B @ src.dec + pick.T @ (read @ src.delayed + -now)
        layer = GatedLayer(RatArray.concat([drive, now]), RatArray.concat([st.bias.rat, RatArray.zeros(len(rows))]),
                           width)
        current[rows] = np.abs(read.to_float()) @ src.bounds
        values = ((read @ src.dec + -now).num != 0).any(axis=1)  # rows that also read values
        mixed = [r for r, v in zip(rows, values, strict=True) if v]
    else:
        layer, mixed = GatedLayer(B @ src.dec, st.bias.rat, width), []
    for seg in st.out.segments:
        _require(bounds[seg.start:seg.start + seg.dim], graph, seg.node, backend)
    units = _value_units(layer, range(width), bounds + current)
    a_init = (st.A.rat @ st.init.rat).to_fractions()
    const = layer.add(Unit(scale_for(1.0), {}, Fraction(1))) if any(a_init) else None
    for r, u in enumerate(units):
        unit = layer.units[u]
        unit.recur = {units[c]: Fraction(v) for c, v in st.A.sparse_rows[r]}
        if const is not None and a_init[r]:  # s_0 = init enters as A init (1 - const_{t-1}) at t = 1
            unit.recur[const] = -Fraction(a_init[r])
            unit.recur_bias = Fraction(a_init[r])
    for j, r in enumerate(rows):
        layer.read(r, _value_unit(layer, width + j, current[r]))
    return layer, StageInfo(latched=rows, mixed=mixed, current=current.tolist())


def mlp_layer(graph: Graph, st: MLPStage, src: Source, h: np.ndarray, facts: Facts, backend: str,
              dtype: torch.dtype, latched=()):
    """Value units for the pass-through rows, a ReLU switch (v = s/k = w) per hidden unit, k from its margin; the
    switches read by a `latched` row get delayed twins (over a value unit holding w, which also gives the gate)."""
    n_vals, n_hidden = st.out.width, st.E.shape[0]
    layer = GatedLayer(RatArray.concat([st.C.rat, st.E.rat]) @ src.dec, RatArray.concat([st.c.rat, st.e.rat]),
                       n_vals)
    direct = ((st.C.rat.num != 0).any(axis=1) | (st.c.rat.num != 0)).tolist()
    vb, hb = _bounds_of(st.C.rat, st.c.rat, h), _bounds_of(st.E.rat, st.e.rat, h)
    readers = _column_entries(st.D)  # per hidden unit: (row, D entry) of the rows reading it
    owner = {}  # hidden unit -> its ReLU node (D's column k has a 1 in the node's row)
    for k, col in enumerate(readers):
        for r, _ in col:
            owner[k] = next(s.node for s in st.out.segments if s.start <= r < s.start + s.dim)
    for seg in st.out.segments:
        if any(direct[seg.start:seg.start + seg.dim]):
            _require(vb[seg.start:seg.start + seg.dim], graph, seg.node, backend)
            _value_units(layer, range(seg.start, seg.start + seg.dim), vb)
    if latched:  # a switch part's bound: its ReLUs' arguments', or the row's own where it is all switches
        sw = np.abs(st.D.f64) @ hb
        layer.switched = np.where(direct, sw, np.minimum(sw, layout_bounds(st.out, facts.magnitudes)))
    info = StageInfo()
    for k in range(n_hidden):
        _require(hb[k:k + 1], graph, owner[k], backend)
        margin = facts.relu_margin(owner[k])
        if 0 < margin < math.inf:  # switch at w = -margin/2, in the middle of the gap: every exact value saturates
            sharp = min(Fraction(K_MAX), 2 * pow2_at_most(4 * SAT / margin))
            shift = min(pow2_at_most(margin / 2), Fraction(SAT) / sharp * 2)
        else:
            sharp, shift = Fraction(K_MAX), Fraction(0)
        info.sharpness.append(float(sharp))
        info.shifts.append(float(shift))
        row = n_vals + k
        held = None
        for r, d in readers[k]:
            x = _switch(layer, row, hb[k], {row: sharp}, sharp * shift, r, d)
            if r in latched:
                held = _value_unit(layer, row, hb[k]) if held is None else held
                _twin(layer, x, held, {held: sharp}, sharp * shift)
    return layer, info


def _column_entries(M) -> list[list[tuple[int, Fraction]]]:
    """Per column of a stage matrix (Coeffs): its nonzero (row, entry) pairs (its transpose's sparse rows)."""
    return [[(r, Fraction(v)) for r, v in col] for col in M.T.sparse_rows]


def _relu_bounds(stage: MLPStage, out: np.ndarray) -> np.ndarray:
    """Per hidden ReLU of an MLP stage: a bound of its value, out[r] / |D_rk| where an output row r is that ReLU
    alone (inf where none is)."""
    out_bound = np.full(stage.E.shape[0], np.inf)
    rows, cols = stage.D.nonzero
    n = len(out)
    alone = (np.bincount(rows, minlength=n) == 1) & (np.bincount(stage.C.nonzero[0], minlength=n) == 0)
    alone &= stage.c.abs64 == 0
    keep = alone[rows]
    r, k = rows[keep], cols[keep]
    np.minimum.at(out_bound, k, out[r] / stage.D.abs64[r, k])
    return out_bound


def gate_layer(graph: Graph, st: GateStage, src: Source, h: np.ndarray, facts: Facts, backend: str,
               dtype: torch.dtype, latched=()):
    """Value units for the pass-through rows; per product u v, switches on the factor with fewer known values
    (a 0/1 flag is one switch), or the approximate pair when neither factor has a few known values."""
    n_vals, n = st.out.width, len(st.gates)
    layer = GatedLayer(RatArray.concat([m.rat for m in (st.P, st.U, st.V)]) @ src.dec,
                       RatArray.concat([RatArray.zeros(n_vals), st.u.rat, st.v.rat]), n_vals)
    pb = _bounds_of(st.P.rat, RatArray.zeros(n_vals), h)
    ub, vb = _bounds_of(st.U.rat, st.u.rat, h), _bounds_of(st.V.rat, st.v.rat, h)
    readers = _column_entries(st.Q)
    gated = set(st.gates)
    for seg in st.out.segments:
        if seg.node not in gated:
            _require(pb[seg.start:seg.start + seg.dim], graph, seg.node, backend)
            _value_units(layer, range(seg.start, seg.start + seg.dim), pb)
    info = StageInfo()
    first: dict[int, int] = {}
    for j, node in enumerate(st.gates):
        comp = j - first.setdefault(node, j)
        a, b = graph[node].args
        _require(np.array([ub[j], vb[j]]), graph, node, backend)
        rows = readers[j]
        u_row, v_row, u_bound, v_bound = n_vals + j, n_vals + n + j, ub[j], vb[j]
        levels, other = _levels(facts, a, comp), _levels(facts, b, comp)
        if other is not None and (levels is None or len(other) < len(levels)):  # switch on b: u and v swap
            levels, u_row, v_row, u_bound, v_bound = other, v_row, u_row, v_bound, u_bound
        before = len(layer.units)
        info.on_u.append(u_row == n_vals + j)
        if levels is not None:
            _levelled_product(layer, u_row, v_row, v_bound, levels, rows, info)
            info.deltas.append(0.0)
            # lowest level 0: at u = 0 every bracket is a switch saturated at exactly 0, so the product is 0
            info.zeroes.append((1 if info.on_u[-1] else 2) if levels[0] == 0 else 0)
        else:
            delta = _product_delta(u_bound, torch.finfo(dtype).eps / 2)
            for s in (1, -1):  # v (sigmoid(delta u) - sigmoid(-delta u)) = v tanh(delta u / 2) ~ delta u v / 2
                for r, q in rows:
                    _switch(layer, v_row, v_bound, {u_row: s * delta}, Fraction(0), r, q * s * 2 / delta)
            info.gains.append(1.0)
            info.deltas.append(float(delta))
            info.below.append(0.0)
            info.zeroes.append(0)
        info.switches.append(sum(layer.units[x].switch is not None for x in range(before, len(layer.units))))
    return layer, info


def _levels(facts: Facts, node: int, comp: int) -> list[Fraction] | None:
    vals = facts.values(node, comp, limit=16)
    return sorted(vals) if vals else None


def _levelled_product(layer: GatedLayer, u_row: int, v_row: int, v_bound: float, levels: list[Fraction],
                      rows, info: StageInfo) -> None:
    """u v for u in {a_1 < ... < a_m}: a_1 v + sum_i (a_i - a_{i-1}) [u > (a_{i-1} + a_i) / 2] v, each bracket a
    switch with slope K = 4 SAT / gap (saturated while u is off a level by less than gap / 4)."""
    gap = min((b - a for a, b in zip(levels, levels[1:], strict=False)), default=Fraction(1))
    K = pow2_at_most(float(4 * SAT / gap)) * 2
    if levels[0]:
        for r, q in rows:
            u = layer.add(Unit(scale_for(v_bound), {v_row: Fraction(1)}))
            layer.read(r, u, q * levels[0])
    for lo, hi in zip(levels, levels[1:], strict=False):
        theta = (lo + hi) / 2
        for r, q in rows:
            _switch(layer, v_row, v_bound, {u_row: K}, -K * theta, r, q * (hi - lo))
    span = levels[-1] - levels[0]
    info.gains.append(float(max(1, 4 * span / gap)))
    info.below.append(float(gap / 4))  # |u - theta| >= gap / 2 exactly, so K |u' - theta| >= SAT while off by < gap / 4


def _product_delta(u_bound: float, unit_roundoff: float) -> Fraction:
    """delta for v tanh(delta u / 2) ~ delta u v / 2, balancing truncation delta^2 |u|^3 |v| / 12 against the
    cancellation of two sigmoids, ~ c u_r |v| / delta (delta^3 = 12 c u_r / |u|^3, c ~ 64)."""
    return pow2_at_most((12 * 64 * unit_roundoff) ** (1 / 3) / max(u_bound, 1e-300))


def product_error(delta: float, U: float, V: float, u: float, fan_in: int, holds: int) -> float:
    """|computed - u v| of an approximate product, given exact factor values |u| <= U, |v| <= V: truncation
    plus the rounding of the two sigmoid units (SIGMOID_ULPS each, the product, a GRU hold's 3 roundings) and
    of the next layer's sum reading them with weights 2/delta (gamma of its fan-in)."""
    trunc = delta**2 * U**3 * V / 12
    n = fan_in + 1
    rnd = (2 / delta) * V * (2 * (SIGMOID_ULPS + 1 + 3 * holds) * u + n * u / (1 - n * u))
    return trunc + rnd


# ---------------------------------------------------------------- errors and platform checks


def stage_errors(info: StageInfo, stage, ctx: Context, holds: int) -> StageErrors:
    """The stack's rounding plus each construction's own: a GRU switch that holds rounds 3 times per step
    (`holds` = 1), ReLU switches are exact outside their band (relu_slack), approximate products are bounded.
    A latched accumulator row is P = s - B D sw (up to |s| + |B D sw| large), rounding per update, plus value units
    holding B D sw, rounding once (StageErrors.current); the stages reading s see terms up to |s| + 2 |B D sw|
    (StageErrors.spread)."""
    current = np.array(info.current) if info.latched else 0.0
    se = rounding(stage, replace(ctx, out=ctx.out + current))
    if info.latched:
        latched = np.zeros(len(ctx.out), dtype=int)
        latched[info.latched] = 1
        latched[info.mixed] = 2
        own = dot_rounding([(stage.B, ctx.h, ctx.int_h)], None, ctx.u, ctx.units)  # the current part's sum
        se.latched, se.current, se.spread = latched, np.where(latched > 0, own, 0.0), 2 * current
    cls = np.full(len(ctx.out), FLOAT_EXACT_I)
    if stage.kind == "mlp":
        k, shift = np.array(info.sharpness), np.array(info.shifts)
        # inside its band a switch at 0 is the surrogate w sigmoid(k w); one at -shift is off from w by < shift
        se.relu_band = (SAT / k, np.where(shift > 0, shift + SAT / k, SURROGATE / k), shift)
        se.relu_slope = SILU_SLOPE  # (w sigmoid(k w) is silu(k w) / k)
        # a GRU switch holds h_a = h_c at their last value, exactly where its argument is integer arithmetic (no
        # rounding: eps times integers). Else, with H a bound of what h_a holds and n = eps w its candidate, torch's
        # h_a = (h_a' - n) z + n and h_c = r h_a' round by at most u (4 H + 3 |n|) in band (|w + shift| < SAT / k,
        # where the output errs by that much more) and u (2 H + |n|) off (z = r = 1: in the sums reading it)
        arg = np.abs(stage.E.f64) @ ctx.h + np.abs(stage.e.f64)
        near = shift + SAT / k  # |w| in band
        held = np.minimum(arg, _relu_bounds(stage, ctx.out)) + se.inner + near
        inexact = holds * (se.inner > 0) * ctx.u * (1 + 4 * ctx.u)
        se.off_drift = inexact * (2 * held + arg + se.inner)
        se.inner = se.inner + inexact * (4 * held + 3 * near)
    elif stage.kind == "gate":
        fu = np.abs(stage.U.f64) @ ctx.h + np.abs(stage.u.f64)
        fv = np.abs(stage.V.f64) @ ctx.h + np.abs(stage.v.f64)
        delta = np.array(info.deltas)
        extra = holds * np.where(se.inner > 0, 6 * ctx.u * np.maximum(fu, fv) * np.array(info.switches), 0.0)
        approx = delta > 0
        for j in np.flatnonzero(approx):
            extra[j] += product_error(delta[j], fu[j], fv[j], ctx.u, ctx.fan_in, holds)
        se.inner = se.inner + extra
        se.gain = np.array(info.gains)
        se.switch = (np.array(info.on_u, dtype=bool), np.array(info.below))
        if not holds:  # a GRU switch that is off holds h_a = h_c at its last value: the next sum cancels them
            se.zero_products = np.array(info.zeroes, dtype=int)  # only up to rounding; an LSTM switch is 0
        if approx.any():
            cls = np.maximum(cls, np.where((np.abs(stage.Q.f64)[:, approx] > 0).any(axis=1), BOUNDED_I, 0))
    se.exactness = cls
    return se


CONDITIONS = (f"tanh(x) == x for |x| <= 2^{EPS_LOG2 + 1}", f"sigmoid(x) == 1 and sigmoid(-x) == 0 for x >= {SAT}",
              f"sigmoid within {SIGMOID_ULPS} ulp (approximate products)", "CPU kernels (cuDNN unchecked)")


def _kernel_probe(dtype: torch.dtype) -> torch.Tensor:
    """Inputs (batch, time, 2): small-signal values up to the tanh limit (integers times 2^-40, as the units of
    an integer program are, so a GRU hold is exact arithmetic), and saturated switch levels."""
    g = torch.Generator().manual_seed(0)
    lim = 2.0 ** (EPS_LOG2 + 1)
    v = torch.round((torch.rand(8, 64, generator=g, dtype=torch.float64) * 2 - 1) * lim * 2.0**40) * 2.0**-40
    v[0, :3] = torch.tensor([lim, -lim, 0.0])
    sign = torch.where(torch.rand(8, 64, generator=g) > 0.5, 1.0, -1.0).double()
    s = sign * SAT * (1 + 3 * torch.rand(8, 64, generator=g, dtype=torch.float64))
    return torch.stack([v, s], -1).to(dtype)


@functools.cache
def check_platform(dtype: torch.dtype) -> tuple[str, ...]:
    """Which CONDITIONS fail for this torch build on the CPU (each checked on a sample, once per dtype)."""
    failed = []
    lim = 2.0 ** (EPS_LOG2 + 1)
    x = torch.cat([torch.linspace(-lim, lim, 4097, dtype=dtype), torch.tensor([lim, -lim, 2.0**-120], dtype=dtype)])
    if not torch.equal(torch.tanh(x), x):
        failed.append(CONDITIONS[0])
    s = torch.tensor([SAT, 2.0 * SAT, 1e30], dtype=dtype).repeat(40)
    if not (torch.all(torch.sigmoid(s) == 1) and torch.all(torch.sigmoid(-s) == 0)):
        failed.append(CONDITIONS[1])
    z = torch.linspace(-30, 30, 241, dtype=torch.float64)
    got = torch.sigmoid(z.to(dtype)).double()
    with localcontext() as ctx:
        ctx.prec = 40
        want = [float(1 / (1 + (-Decimal(v)).exp())) for v in z.to(dtype).double().tolist()]
    ulp = torch.finfo(dtype).eps * torch.tensor(want, dtype=torch.float64)
    if not torch.all((got - torch.tensor(want, dtype=torch.float64)).abs() <= SIGMOID_ULPS * ulp):
        failed.append(CONDITIONS[2])
    return tuple(failed)


# ---------------------------------------------------------------- the shared backend driver

_LAYER = {"state": state_layer, "mlp": mlp_layer, "gate": gate_layer}


@dataclass
class UnitWeights:
    """A layer's logical units as float64 arrays (each computed exactly, then rounded once)."""

    eps: np.ndarray  # per unit
    is_switch: np.ndarray  # per unit
    Wd: np.ndarray  # eps * drive (units x layer input)
    bd: np.ndarray
    Ws: np.ndarray  # switch pre-activation (zeros for value units)
    bs: np.ndarray
    R: np.ndarray  # eps_u * coef / eps_v (units x units)
    rb: np.ndarray
    G: np.ndarray  # delayed twins' reset-gate pre-activation over the layer's own units: coef / eps_v
    gb: np.ndarray
    gated: np.ndarray  # per unit: a delayed twin (its reset gate reads G, gb)


def _vector(n: int, entries: dict[int, Fraction]) -> RatArray:
    return RatArray.from_entries((n,), {(i,): v for i, v in entries.items() if v})


def unit_weights(layer: GatedLayer) -> UnitWeights:
    units, rows = layer.units, layer.src.shape[0]
    n = len(units)
    Md = RatArray.from_entries((n, rows), {(u, r): c for u, x in enumerate(units) for r, c in x.drive.items() if c})
    Ms = RatArray.from_entries((n, rows), {(u, r): c for u, x in enumerate(units) if x.switch
                                            for r, c in x.switch.items() if c})
    eps = np.array([float(x.eps) for x in units])
    bd = Md @ layer.src_bias + _vector(n, {u: x.drive_bias for u, x in enumerate(units)})
    bs = Ms @ layer.src_bias + _vector(n, {u: x.switch_bias for u, x in enumerate(units)})
    R = RatArray.from_entries((n, n), {(u, v): x.eps * c / units[v].eps for u, x in enumerate(units)
                                       for v, c in x.recur.items() if c})
    rb = _vector(n, {u: x.eps * x.recur_bias for u, x in enumerate(units)})
    G = RatArray.from_entries((n, n), {(u, v): c / units[v].eps for u, x in enumerate(units) if x.gate
                                       for v, c in x.gate.items() if c})
    gb = _vector(n, {u: x.gate_bias for u, x in enumerate(units)})
    switch = np.array([x.switch is not None for x in units], dtype=bool)
    gated = np.array([x.gate is not None for x in units], dtype=bool)
    return UnitWeights(eps, switch, (Md @ layer.src).to_float() * eps[:, None], bd.to_float() * eps,
                       (Ms @ layer.src).to_float(), bs.to_float(), R.to_float(), rb.to_float(), G.to_float(),
                       gb.to_float(), gated)


class GatedBackend:
    """The emission driver of a gated-RNN backend: per stage a GatedLayer, mapped to one torch layer by the
    subclass (`switch_width` physical units per switch, `layer_weights` and `build_module`)."""

    name: str
    prefix: str  # parameter-name prefix of the layers, e.g. "grus"
    switch_width: int
    holds: int  # 1 where a switch that is off holds its previous value (GRU), else 0
    target = None  # set by subclasses

    def emit(self, graph: Graph, stack: Stack, facts: Facts | None, dtype: torch.dtype = torch.float64):


        if facts is None:
            raise ValueError(f"the {self.name} backend needs range facts")
        x_bound = max(facts.magnitudes(graph.input), default=0.0)
        _require(np.array([x_bound]), graph, graph.input, self.name)
        bounds, _ = stack_bounds(stack, facts.magnitudes, x_bound)
        src, h = Source(RatArray.eye(stack.input_dim)), np.full(stack.input_dim, x_bound)
        plan = _latch_plan(stack) if self.holds else {}
        weights, places, infos = [], [], []
        for i, (st, b) in enumerate(zip(stack.stages, bounds, strict=True)):
            layer, info = _LAYER[st.kind](graph, st, src, h, facts, self.name, dtype, plan.get(i, ()))
            if not layer.units:  # every value of the stage is provably 0 (a product with a 0 factor): torch
                layer.add(Unit(Fraction(1), {}))  # layers need a unit, which holds 0 and nothing reads
            first = np.cumsum([0] + [self.switch_width if u.switch else 1 for u in layer.units], dtype=np.int64)
            weights.append(self.layer_weights(unit_weights(layer), first))
            src = self._source(layer, first)
            places += placements(f"{self.prefix}.{i}", src.dec, st.out)
            infos.append(info)
            h = b.values
        hiddens = [int(w["weight_hh_l0"].shape[1]) for w in weights]
        config = layers_config(stack, hiddens)
        module = self.build_module(config)
        for layer_module, w in zip(getattr(module, self.prefix), weights, strict=True):
            _load(layer_module, w)
        module.set_heads(stack, src.dec)
        return Emitted(module, config, places, None, {"stages": infos})

    def _source(self, layer: GatedLayer, first: np.ndarray) -> Source:
        """The decoder of a layer's values (value_r = sum of coef * out_unit / eps_unit over its reads, a GRU
        switch's out being h_a - h_c), and where it has delayed twins, its switch part and the twins' copy."""
        full: dict = {}
        switched: dict = {}
        delayed: dict = {}
        twins = bool(layer.delayed)  # (the switch part and the twins' copy only where a latch reads them)

        def add(entries: dict, key: tuple[int, int], c: Fraction) -> None:
            entries[key] = entries.get(key, 0) + c

        for row, reads in layer.reads.items():
            for u, coef in reads:
                unit, c, p = layer.units[u], coef / layer.units[u].eps, int(first[u])
                terms = [(p, c), (p + 1, -c)] if unit.switch and self.switch_width == 2 else [(p, c)]
                for q, v in terms:
                    add(full, (row, q), v)
                    if twins and unit.switch:
                        add(switched, (row, q), v)
                if u in layer.delayed:
                    add(delayed, (row, int(first[layer.delayed[u]])), c)

        def matrix(entries: dict) -> RatArray:
            return RatArray.from_entries((layer.n_values, int(first[-1])), {k: v for k, v in entries.items() if v})

        if not twins:
            return Source(matrix(full))
        return Source(matrix(full), matrix(switched), matrix(delayed), layer.switched)

    def layer_weights(self, w: UnitWeights, first: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def build_module(self, config: dict) -> torch.nn.Module:
        raise NotImplementedError

    def stage_errors(self, emitted, i: int, stage, ctx: Context) -> StageErrors:
        return stage_errors(emitted.constants["stages"][i], stage, ctx, self.holds)

    def conditions(self, dtype: torch.dtype) -> tuple[str, ...]:
        return CONDITIONS

    @functools.cache  # noqa: B019 - the backends are module-level singletons; the machine does not change
    def check_platform(self, dtype: torch.dtype) -> tuple[str, ...]:
        """CONDITIONS checked on this machine, through the backend's own layer (torch may run it on kernels
        of its own, e.g. oneDNN for float32 LSTMs): a value unit must pass small-signal inputs unchanged
        and a switch must gate them exactly, on and off. Checked once per process and dtype."""
        failed = list(check_platform(dtype))
        x = _kernel_probe(dtype)
        v, s = x[..., 0], x[..., 1]
        w = UnitWeights(np.ones(2), np.array([False, True]), np.array([[1.0, 0.0], [1.0, 0.0]]), np.zeros(2),
                        np.array([[0.0, 0.0], [0.0, 1.0]]), np.zeros(2), np.zeros((2, 2)), np.zeros(2),
                        np.zeros((2, 2)), np.zeros(2), np.zeros(2, dtype=bool))
        first = np.cumsum([0, 1, self.switch_width])
        layer_w = self.layer_weights(w, first)
        module = self.build_module({"inputs": [2], "hiddens": [int(first[-1])], "readout_in": int(first[-1]),
                                    "output_dim": 1, "probes": {}}).to(dtype)
        layer = getattr(module, self.prefix)[0]
        _load(layer, layer_w)
        with torch.no_grad():
            h = layer(x)[0]
        gated = h[..., 1] - h[..., 2] if self.switch_width == 2 else h[..., 1]
        if not torch.equal(h[..., 0], v) or not torch.equal(gated, torch.where(s > 0, v, torch.zeros_like(v))):
            failed.append(f"the {self.name} layer's own kernels ({dtype}) pass small signals and switch exactly")
        return tuple(failed)

    def sum_bound(self, stack: Stack, emitted, magnitudes, x_bound: float) -> float:
        return math.nan  # scaled tanh units: not integer arithmetic (the propagated bound covers them)


def _latch_plan(stack: Stack) -> dict[int, set[int] | list[int]]:
    """Which accumulators to carry through delayed twins (GRU): per state stage after an MLP stage, its rows
    s_t = s_{t-1} + B h_t (A's row and column r hold only A_rr = 1, no bias) reading a row of the MLP stage that
    has a switch part (D); and per such MLP stage, the rows those accumulators read, whose switches get twins."""
    plan: dict[int, set[int] | list[int]] = {}
    for i, st in enumerate(stack.stages):
        prev = stack.stages[i - 1] if i else None
        if st.kind != "state" or prev is None or prev.kind != "mlp":
            continue
        B = st.B.f64
        switched = (prev.D.f64 != 0).any(axis=1)
        rows = np.flatnonzero(st.accumulators & (B[:, switched] != 0).any(axis=1)).tolist()
        if rows:
            plan[i] = rows
            plan[i - 1] = set(np.flatnonzero(switched & (B[rows] != 0).any(axis=0)).tolist())
    return plan


def _load(layer: torch.nn.Module, weights: dict[str, np.ndarray]) -> None:
    """Copy a layer's float64 weights (by parameter name) into the torch layer."""
    with torch.no_grad():
        for name, value in weights.items():
            getattr(layer, name).copy_(torch.from_numpy(value))


def expand(w: UnitWeights, first: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """A (units x k) array placed at each unit's first physical row of an (H x k) array."""
    out = np.zeros((int(first[-1]),) + rows.shape[1:])
    out[first[:-1]] = rows
    return out


def recurrence(w: UnitWeights, first: np.ndarray) -> np.ndarray:
    """R over physical units (rows and columns at each unit's first physical unit)."""
    H = int(first[-1])
    out = np.zeros((H, H))
    out[np.ix_(first[:-1], first[:-1])] = w.R
    return out
