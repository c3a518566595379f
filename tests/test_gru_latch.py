"""GRU latches (backends/gated.py): an accumulator summing ReLU switches is carried through their delayed twins.

An off GRU switch holds its unit through torch's own update (h' - n) z + n with z = 1, which rounds whenever h' and
the candidate n lie on different binary grids, so a register summing switches would move by that rounding at
every later step. Through the twins it sums exact zeros instead, and reads the current switches only once.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

import lsrl

PROGRAM = str(Path(__file__).resolve().parent.parent / "programs" / "vec2vec.lsrl")

# q latches relu(x) at step 0; later the argument x - 4 t is at most -3, far from the held value's grid
LATCH = """
input x[1] in [-1, 1]
let t = counter()
state q = 0
q <- q + relu(x - 4 * t)
output q
"""

# the same through a flag whose steps range analysis proves quiet after step 0 (vec2vec's query register)
FLAGGED = """
input x[1] in [-1, 1]
let t = counter()
def pick(c, a) = relu(a - 2 * (1 - c)) - relu(-a - 2 * (1 - c))
state q = 0
q <- q + pick(smaller(t, 1 / 2, 4), x)
output q
"""


def _run(compiled, dtype, n=32, length=300):
    """The output, and the latched register's two units (P, the current part) at every step."""
    x = np.random.default_rng(0).uniform(-1, 1, (n, length, 1))
    x[:, 0, 0] = np.abs(x[:, 0, 0])  # (so relu(x_0) = x_0: full-precision values to hold)
    place = next(p for p in compiled.emitted.placements if compiled.graph[p.node].label == "q")
    layer = dict(compiled.module.named_modules())[place.layer]
    seen = {}
    hook = layer.register_forward_hook(lambda m, i, o: seen.__setitem__("h", o[0]))
    with torch.no_grad():
        y = compiled.module(torch.tensor(x, dtype=dtype))[..., 0].double().numpy()
    hook.remove()
    units = place.start + np.flatnonzero(place.decode.num[0])
    return x, y, seen["h"][..., units].double().numpy()


def test_a_latched_register_sums_exact_zeros():
    """P (the register less its current switches) takes relu(x_0) one step late and then holds it bit for bit;
    the output P + current is off only by the current switch's one-step rounding: it does not accumulate."""
    for dtype, name in ((torch.float64, "float64"), (torch.float32, "float32")):
        compiled = lsrl.compile(LATCH, "gru", dtype=name, max_len=512)
        x, y, (P, current) = (lambda r: (r[0], r[1], r[2].transpose(2, 0, 1)))(_run(compiled, dtype))
        assert np.all(P[:, 0] == 0) and np.all(P[:, 1:] == P[:, 1:2]), name
        eps = torch.finfo(dtype).eps
        assert np.allclose(y[:, 0], x[:, 0, 0], rtol=4 * eps, atol=0)
        # one hold's rounding, u (2 |held| + |candidate|) with |candidate| <= |x - 4 t|: never a sum over steps
        one_step = eps * (3 + 4 * np.arange(y.shape[1]))
        assert np.all(np.abs(y - y[:, :1]) <= one_step), name


def test_the_latch_is_built_from_twins_and_a_current_part():
    """One twin and one held value unit per switch the register reads, one current unit per latched row: the
    state layer's row decodes as P + current (two units), and the twins' reset gates are plain weight_hh rows of
    a vanilla torch.nn.GRU."""
    compiled = lsrl.compile(LATCH, "gru", max_len=64)
    info = compiled.emitted.constants["stages"]
    state = next(i for i, s in enumerate(compiled.stack.stages) if s.kind == "state" and info[i].latched)
    switches = compiled.module.grus[state - 1]
    assert (switches.weight_hh_l0[:switches.hidden_size] != 0).sum() == 1  # one twin reads one held unit
    place = next(p for p in compiled.emitted.placements if compiled.graph[p.node].label == "q")
    assert (place.decode.num != 0).sum() == 2


def test_a_latched_register_has_a_bound_independent_of_max_len():
    """The flag is 0 from step 1 on, so the twins are exactly 0 from step 2 on and the register's bound is the
    same at max_len 16 and 4096 (without twins the holds' rounding was charged at every step: 50x at 4096)."""
    bounds = [lsrl.compile(FLAGGED, "gru", dtype="float32", max_len=n).promise().output.abs_bound for n in (16, 4096)]
    assert bounds[0] == bounds[1] < 1e-4


def test_vec2vec_float32_verifies_on_gru():
    """The configuration docs/backends.md gives for float32 (edges of 1/8, values in [-1, 1], D = 1): the query
    register no longer drifts, so the output's bound is useful up to max_len 256 and verify passes."""
    params = {"D": 1, "eps": Fraction(1, 8), "max_abs": 1}
    report = lsrl.verify(PROGRAM, "gru", dtype="float32", params=params, max_len=256, samples=64, length=256)
    assert report.bounded and report.passed, report.lines()
    assert not report.loose
