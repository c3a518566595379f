"""Interpreter: exact vs float mode, tracing, state semantics, batching, input validation."""

from __future__ import annotations

from fractions import Fraction

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsrl import compile_source, interpret
from lsrl.diagnostics import LsrlError

ACC = """
input x[2] in [-1, 1]
state acc[2] = [1/3, -2/7]
acc <- [[1/2, 1/3], [0, 1]] @ acc + x / 7 + 1/5
let r = relu(acc - 1/10)
probe g = r * x
output cat(sum(r), acc[1])
"""


def _fractions(x: np.ndarray) -> np.ndarray:
    out = np.empty(x.shape, dtype=object)
    out.reshape(-1)[:] = [Fraction(v) for v in x.reshape(-1)]
    return out


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 4), st.integers(1, 30), st.integers(0, 2**31 - 1))
def test_exact_equals_float(batch, length, seed):
    prog = compile_source(ACC, "acc.lsrl")
    x = np.random.default_rng(seed).uniform(-1, 1, (batch, length, 2))
    exact = interpret(prog.graph, _fractions(x), exact=True)
    fl = interpret(prog.graph, x)
    assert all(isinstance(v, Fraction) for v in exact.output.reshape(-1))
    np.testing.assert_allclose(exact.output.astype(float), fl.output, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(exact.probes["g"].astype(float), fl.probes["g"], rtol=1e-12, atol=1e-12)


def _oracle_acc(seq):
    A = np.array([[0.5, 1 / 3], [0, 1]])
    s = np.array([1 / 3, -2 / 7])
    out = []
    for x in seq:
        s = A @ s + x / 7 + 0.2
        r = np.maximum(s - 0.1, 0)
        out.append([r.sum(), s[1]])
    return np.array(out)


def test_state_semantics_against_python_loop():
    prog = compile_source(ACC, "acc.lsrl")
    x = np.random.default_rng(1).uniform(-1, 1, (3, 25, 2))
    y = interpret(prog.graph, x).output
    for b in range(3):
        np.testing.assert_allclose(y[b], _oracle_acc(x[b]), rtol=1e-12)


def test_first_output_is_A_init_plus_update():
    prog = compile_source("input x[1]\nstate s = 5\ns <- 2 * s + x\noutput s\n", "t.lsrl")
    y = interpret(prog.graph, np.array([[[1.0], [0.0]]])).output
    assert y[0, :, 0].tolist() == [11.0, 22.0]


def test_exact_rational_results_are_exact():
    prog = compile_source("input x[1]\nstate s = 0\ns <- s + x / 3\noutput s\n", "t.lsrl")
    x = _fractions(np.ones((1, 3, 1)))
    y = interpret(prog.graph, x, exact=True).output
    assert y[0, :, 0].tolist() == [Fraction(1, 3), Fraction(2, 3), Fraction(1)]


def test_exact_mode_refuses_irrational_programs():
    prog = compile_source("input x[1]\noutput sin(1) * x\n", "t.lsrl")
    with pytest.raises(LsrlError) as exc:
        interpret(prog.graph, _fractions(np.ones((1, 2, 1))), exact=True)
    assert exc.value.diagnostics[0].code == "E0501"


def test_trace_names_every_variable():
    prog = compile_source("input x[1]\nstate c = 0\nc <- c + 1\nlet d = c * x\noutput d + 1\n", "t.lsrl")
    res = interpret(prog.graph, np.ones((2, 4, 1)), trace=True)
    named = res.named(prog.graph)
    assert set(named) >= {"x", "c", "d", "output"}
    assert named["c"][0, :, 0].tolist() == [1, 2, 3, 4]


PROBED = """input x[1]
let s = accumulate(x)
let y = 2 * s
output y
probe total = s
probe twice = y
probe raw = x
probe inc = s + 1
"""


def test_trace_lists_probes_under_their_names():
    prog = compile_source(PROBED, "t.lsrl")
    named = interpret(prog.graph, np.array([[[1.0], [0.0], [1.0]]]), trace=True).named(prog.graph)
    assert list(named) == ["x", "s", "y", "inc", "total", "twice", "raw"]
    assert named["total"][0, :, 0].tolist() == [1, 1, 2]
    assert named["twice"][0, :, 0].tolist() == [2, 2, 4]
    # a probe wins over an earlier node that carries its name
    prog = compile_source("input x[1]\nlet s = x + 1\ns = s * 3\noutput s\nprobe s = s\n", "t.lsrl")
    named = interpret(prog.graph, np.array([[[1.0], [2.0]]]), trace=True).named(prog.graph)
    assert named["s"][0, :, 0].tolist() == [6, 9]


def test_cli_trace_prints_probe_names(tmp_path, capsys):
    from lsrl.cli import main

    prog = tmp_path / "p.lsrl"
    prog.write_text(PROBED)
    assert main(["run", str(prog), "--input", "1 0 1", "--trace"]) == 0
    assert capsys.readouterr().out.splitlines() == [
        "2\t# x=1 s=1 y=2 inc=2 total=1 twice=2 raw=1",
        "2\t# x=0 s=1 y=2 inc=2 total=1 twice=2 raw=0",
        "4\t# x=1 s=2 y=4 inc=3 total=2 twice=4 raw=1",
    ]


def test_batch_rows_are_independent():
    prog = compile_source(ACC, "acc.lsrl")
    x = np.random.default_rng(2).uniform(-1, 1, (5, 12, 2))
    whole = interpret(prog.graph, x).output
    for b in range(5):
        np.testing.assert_allclose(interpret(prog.graph, x[b:b + 1]).output[0], whole[b], rtol=1e-13, atol=1e-13)


def test_input_shape_is_checked():
    prog = compile_source(ACC, "acc.lsrl")
    with pytest.raises(ValueError, match=r"\(batch, time, 2\)"):
        interpret(prog.graph, np.zeros((3, 2)))
    with pytest.raises(ValueError):
        interpret(prog.graph, np.zeros((1, 3, 3)))


def test_domain_sampling_respects_domain():
    prog = compile_source("input x[3] in {2..5}\noutput x\n", "t.lsrl")
    x = prog.input.sample(np.random.default_rng(0), 4, 50)
    assert x.shape == (4, 50, 3) and set(np.unique(x)) <= {2.0, 3.0, 4.0, 5.0}
    prog = compile_source("input x[1] in [-2, 1/2]\noutput x\n", "t.lsrl")
    x = prog.input.sample(np.random.default_rng(0), 4, 50)
    assert x.min() >= -2 and x.max() <= 0.5


BROADCAST = """input x[1]
let a = x * [1, 2, 3]
let b = [1, 2, 3] + x
let c = [1, 2, 3] - x
let d = x - [1, 2, 3]
let e = x / [1, 2, 4]
let f = [1/2, 0, -1] * x + x
output cat(a, b, c, d, e, f)
"""


def test_dim1_value_broadcasts_against_constant_vectors():
    prog = compile_source(BROADCAST, "t.lsrl")
    xs = [Fraction(2), Fraction(-1, 3), Fraction(0)]
    res = interpret(prog.graph, _fractions(np.array([[[v] for v in xs]], dtype=object)), exact=True)
    vec = [Fraction(1), Fraction(2), Fraction(3)]
    for t, v in enumerate(xs):
        want = ([v * k for k in vec] + [k + v for k in vec] + [k - v for k in vec] + [v - k for k in vec]
                + [v / k for k in (1, 2, 4)] + [k * v + v for k in (Fraction(1, 2), 0, -1)])
        assert res.output[0, t].tolist() == want
    # one Linear per operation, no broadcasting node: x -> [1, 2, 3] * x is a column
    lin = [n for n in prog.graph.nodes if n.label == "a"][0]
    assert lin.op.mnemonic == "linear" and lin.dim == 3


def test_length1_constant_vector_broadcasts_against_wide_values():
    prog = compile_source("input x[3]\noutput x + [10] - [2] * x\n", "t.lsrl")
    assert interpret(prog.graph, np.array([[[1.0, 2.0, 3.0]]])).output[0, 0].tolist() == [9, 8, 7]


def test_wide_value_and_constant_vector_of_another_length_is_e0204():
    with pytest.raises(LsrlError) as exc:
        compile_source("input x[2]\noutput x * [1, 2, 3]\n", "t.lsrl")
    assert exc.value.diagnostics[0].code == "E0204"
    assert "dim 1 (which broadcasts)" in exc.value.diagnostics[0].hint


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(0, 7), st.data())
def test_linear_recurrence_equals_the_plain_loop(dim, steps, data):
    """Components A leaves uncoupled are their drive; the loop over the coupled ones gives, exactly, what the
    plain loop over all components gives (exact rationals, any mix of coupled and uncoupled components)."""
    from lsrl.ir.recurrence import linear_recurrence

    frac = st.builds(Fraction, st.integers(-3, 3), st.integers(1, 3))
    coupled = data.draw(st.lists(st.booleans(), min_size=dim, max_size=dim))
    a = np.array([[data.draw(frac) if coupled[i] and coupled[j] else Fraction(0) for j in range(dim)]
                  for i in range(dim)], dtype=object)
    drive = np.array(data.draw(st.lists(st.lists(st.lists(frac, min_size=dim, max_size=dim), min_size=steps,
                                                 max_size=steps), min_size=2, max_size=2)), dtype=object)
    drive = drive.reshape(2, steps, dim)
    init = np.array(data.draw(st.lists(frac, min_size=dim, max_size=dim)), dtype=object)
    want, s = np.empty_like(drive), init
    for t in range(steps):
        s = s @ a.T + drive[:, t]
        want[:, t] = s
    assert np.array_equal(linear_recurrence(drive, a.T, init), want)
