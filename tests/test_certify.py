"""Exactness certificates: certified models compute the exact program in floats; the bounds really bound."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st
from lsrl.backends import BACKENDS

from lsrl import compile_source, load_program
from lsrl.compiling import CompileOptions, compile_program
from lsrl.ir.interpreter import Interpreter
from lsrl.verifying import verify

ROOT = Path(__file__).parent.parent
INTEGER_PROGRAMS = ["counter", "dyck1", "more_ones", "parity", "running_max"]

GATED = """
input x[1] in {0..3}
let c = accumulate(x)
let big = step(c, 4)
output ifelse_mul(big, c, 2 * x)
probe c = c
"""

# integer weights, but the state reaches 4096 * 1024 = 2^22 and the read-out multiplies it by 64: partial
# sums up to 2^28 fit float64's 2^53 but not float32's 2^24
STEEP = """
input x[1] in {0, 1}
let c = accumulate(1024 * x)
output relu(64 * c - 1)
"""


def _compiled(backend: str, dtype: str, path: str | None = None, source: str | None = None, **params):
    prog = load_program(str(ROOT / f"programs/{path}.lsrl"), params) if path else compile_source(source, "t.lsrl")
    return compile_program(prog, CompileOptions(backend, dtype=dtype, max_len=512))


def _exact_outputs(compiled, x: np.ndarray):
    xf = np.vectorize(Fraction, otypes=[object])(x.astype(np.int64))
    res = Interpreter(compiled.program.graph, exact=True).run(xf)
    return res.output, res.probes


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", INTEGER_PROGRAMS)
@settings(max_examples=4, deadline=None)
@given(seed=st.integers(0, 2**16))
def test_integer_programs_are_promised_and_computed_exactly_in_float32(name, backend, seed):
    """Integer programs: the promise's bound is 0 on every output (per-row integer arithmetic, certified or
    propagated) and the float32 model computes the exact program bit for bit."""
    c = _compiled(backend, "float32", name)
    assert all(o.abs_bound == 0 for o in c.promise("float32").outputs.values())
    x = c.program.input.sample(np.random.default_rng(seed), 2, 80)  # the exact interpreter is the slow part
    want, want_probes = _exact_outputs(c, x)
    with torch.no_grad():
        y, probes = c.module(torch.tensor(x, dtype=torch.float32), probes=True)
    assert np.array_equal(y.double().numpy(), want.astype(np.float64))  # bit for bit, not within a tolerance
    for k, p in probes.items():
        assert np.array_equal(p.double().numpy(), want_probes[k].astype(np.float64))


@pytest.mark.parametrize("backend", ["rnn", "lrnn"])  # reads each one's own layers
def test_rnn_and_lrnn_sums_stay_within_the_certified_bound(backend):
    c = _compiled(backend, "float64", source=GATED)
    bound = c.certificate.bound
    x = torch.tensor(c.program.input.sample(np.random.default_rng(0), 16, 512), dtype=torch.float64)
    seen = 0.0
    with torch.no_grad():
        if backend == "rnn":  # every pre-activation of every layer, recomputed from the vanilla layers
            h = x
            for rnn in c.module.rnns:
                out, _ = rnn(h)
                prev = torch.cat([torch.zeros_like(out[:, :1]), out[:, :-1]], dim=1)
                pre = h @ rnn.weight_ih_l0.T + rnn.bias_ih_l0 + prev @ rnn.weight_hh_l0.T
                seen = max(seen, float(pre.abs().max()))
                h = out
        else:
            h = x
            for st_ in c.module.stages:
                h = st_(h)
                seen = max(seen, float(h.abs().max()))
    assert 0 < seen <= bound


def test_sums_beyond_float32_are_certified_for_float64_only():
    c = _compiled("lrnn", "float32", source=STEEP)
    assert 2**24 < c.certificate.bound <= 2**53
    assert not c.certificate.exact_in(torch.float32) and c.certificate.exact_in(torch.float64)
    p32, p64 = c.promise("float32"), c.promise("float64")
    assert not p32.certified and p32.output.abs_bound > 0
    assert "float64 arithmetic certified exact" in p64.certified and p64.output.abs_bound == 0


@pytest.mark.parametrize(("source", "reason"), [
    ("input x[1] in [0, 1]\nstate s = 0\ns <- s + x\noutput s", "input domain is not a set of integers"),
    ("input x[1] in {0, 1}\noutput x / 3", "coefficient is not an integer")])
def test_programs_outside_integer_arithmetic_get_no_certificate(source, reason):
    c = _compiled("lrnn", "float32", source=source)
    assert c.certificate.bound is None and reason in c.certificate.reason
    assert not c.certificate.exact_in(torch.float64)


@pytest.mark.parametrize("name", ["mod_counter", "tok2tok"])
def test_rotation_counters_compile_to_certified_integer_arithmetic(name):
    """Their rotation states (rounded cosines) are lifted to cyclic one-hots and the steps reading them fold
    to integer maps (lsrl/passes/lift_orbits.py, fold_onehot.py): nothing inexact is left."""
    c = _compiled("lrnn", "float32", name)
    assert c.certificate.exact_in(torch.float64)


def test_a_certified_float32_program_verifies_under_the_float64_allowance():
    report = verify(load_program(str(ROOT / "programs/parity.lsrl")), CompileOptions("rnn", dtype="float32"),
                    samples=16, length=64)
    assert report.passed and report.max_abs == 0
    assert report.promise.output.allowed == 0 and "arithmetic certified exact" in report.promise.certified


def test_a_state_init_that_readers_never_see_still_counts():
    # s_t = 0 for t >= 1 (range analysis proves it), but s_1 = A s_0 forms (2^23 + 1) - (2^23 + 1): partial
    # sums up to 2^24 + 2, past what the certificate may assume for float32
    c = _compiled("lrnn", "float32", source="""
input x[1] in {0, 1}
state s[2] = [8388609, 8388609]
s <- [[1, -1], [0, 0]] @ s
output s[0] + x
""")
    assert c.certificate.bound >= 2**24 + 2 and not c.certificate.exact_in(torch.float32)
