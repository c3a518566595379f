"""Legalisation for diagonal [0, 1] targets: the rewritten graph equals the program up to max_len, the last
step included, and every state it keeps is one such a target realises."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsrl import LsrlError, compile_source, interpret, load_program
from lsrl.ir import graph as ir
from lsrl.legalize import legalize
from lsrl.legalize.periodic import choose
from lsrl.legalize.spectrum import diagonal01
from lsrl.passes import optimize

PROGRAMS = sorted(Path(__file__).parent.parent.joinpath("programs").glob("*.lsrl"))


def _legal(g: ir.Graph, max_len: int) -> ir.Graph:
    new, _ = legalize(g, "diagonal01", max_len, "test")
    assert all(diagonal01(n.op) for n in new.nodes if isinstance(n.op, ir.LinState))
    return new


def _same(a: ir.Graph, b: ir.Graph, x: np.ndarray) -> None:
    ra, rb = interpret(a, x), interpret(b, x)
    assert np.array_equal(ra.output, rb.output)
    for name in ra.probes:
        assert np.array_equal(ra.probes[name], rb.probes[name])


@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
@pytest.mark.parametrize("max_len", [7, 64])
def test_programs_keep_their_meaning_up_to_max_len(path, max_len):
    prog = load_program(str(path))
    g = optimize(prog.graph)[0]
    x = prog.input.sample(np.random.default_rng(max_len), 6, max_len)  # the last step is max_len - 1
    _same(g, _legal(g, max_len), x)


@pytest.mark.parametrize("T", [2, 5, 8])
def test_tok2tok_long_registers_and_phases(T):
    """T = 8: shift registers of 8 and 9 slots become chains of 4-slot delay lines; the phases of T and 2 T
    share one decoder."""
    prog = load_program("programs/tok2tok.lsrl", {"T": T})
    g = optimize(prog.graph)[0]
    new, report = legalize(g, "diagonal01", 300, "test")
    assert report.rewrites["decoder.binary"] + report.rewrites.get("decoder.flat", 0) == 1
    x = prog.input.sample(np.random.default_rng(T), 8, 300)
    _same(g, new, x)


@pytest.mark.parametrize(("n", "max_len", "kind"), [(5, 4, "flat"), (7, 6, "flat"), (3, 4096, "binary"),
                                                    (5, 97, "binary"), (12, 13, "binary")])
def test_each_decoder_is_exact_at_every_step_to_max_len(n, max_len, kind):
    assert choose(n, max_len).kind == kind
    g = compile_source(f"input x[1] in {{0, 1}}\noutput mod_counter({n})\nprobe oh = mod_onehot({n})", "t.lsrl").graph
    new = _legal(optimize(g)[0], max_len)
    got = interpret(new, np.zeros((1, max_len, 1)))
    t = np.arange(max_len)
    assert np.array_equal(got.output[0, :, 0], t % n)
    assert np.array_equal(got.probes["oh"][0], np.eye(n)[t % n])


def test_binary_decoder_values_stay_small():
    """Range analysis bounds every decoder value by about 2 max_len, so float32 holds them as integers."""
    from lsrl.analysis.ranges import analyze

    g = compile_source("input x[1] in {0, 1}\noutput mod_counter(10)", "t.lsrl").graph
    new = _legal(optimize(g)[0], 4096)
    r = analyze(new, compile_source("input x[1] in {0, 1}\noutput x", "d.lsrl").input.domain, 4096)
    assert max(max(r[n.id].magnitudes) for n in new.nodes) <= 2 * 4096


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 9), st.data())
def test_random_permutation_states(n, data):
    """Any permutation with any init (a cycle of the orbit, possibly shorter than n) and a linear read."""
    perm = data.draw(st.permutations(range(n)))
    init = data.draw(st.lists(st.integers(-3, 3), min_size=n, max_size=n))
    A = [[int(perm[j] == i) for j in range(n)] for i in range(n)]
    src = f"input x[1] in {{0, 1}}\nstate s[{n}] = {init}\ns <- {A} @ s\noutput s + repeat(x, {n})"
    g = compile_source(src, "t.lsrl").graph
    max_len = data.draw(st.integers(1, 40))
    x = np.random.default_rng(n).integers(0, 2, (2, max_len, 1)).astype(float)
    _same(g, _legal(g, max_len), x)


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 11), st.data())
def test_random_nilpotent_states(n, data):
    """Strictly lower-triangular A (nilpotent, any index up to n) with an input, a bias and an init."""
    A = [[data.draw(st.integers(-2, 2)) if j < i else 0 for j in range(n)] for i in range(n)]
    init = data.draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n))
    bias = data.draw(st.lists(st.integers(-1, 1), min_size=n, max_size=n))
    src = (f"input x[1] in {{-1, 0, 1}}\nstate s[{n}] = {init}\n"
           f"s <- {A} @ s + repeat(x, {n}) + {bias}\noutput s")
    g = compile_source(src, "t.lsrl").graph
    xe = np.vectorize(Fraction, otypes=[object])(np.random.default_rng(n).integers(-1, 2, (2, 3 * n, 1)))
    new = _legal(g, 64)
    assert interpret(new, xe, exact=True).output.tolist() == interpret(g, xe, exact=True).output.tolist()


@settings(max_examples=40, deadline=None)
@given(st.integers(1, 6), st.integers(1, 6), st.integers(0, 6), st.data())
def test_rank_factors_are_exact_with_the_rank_as_width(n, c, r, data):
    """W = C R with C a selection of W's columns and R in reduced row echelon form, r = rank W."""
    from lsrl.legalize.delays import rank_factors

    r = min(r, n, c)
    ints = st.integers(-3, 3)
    U = np.array([[data.draw(ints) for _ in range(r)] for _ in range(n)], dtype=int).reshape(n, r)
    V = np.array([[data.draw(ints) for _ in range(c)] for _ in range(r)], dtype=int).reshape(r, c)
    W = (U @ V).astype(object) * Fraction(1, data.draw(st.integers(1, 4)))
    C, R = rank_factors(W)
    assert (C @ R == W).all()
    assert C.shape[1] == np.linalg.matrix_rank((U @ V).astype(float))
    assert all(any((C[:, k] == W[:, j]).all() for j in range(c)) for k in range(C.shape[1]))
    for row in R:  # leading 1s, zero elsewhere in their columns
        lead = next(j for j, v in enumerate(row) if v != 0)
        assert row[lead] == 1 and sum(R[i, lead] != 0 for i in range(len(R))) == 1


@pytest.mark.parametrize("n", [12, 24])
def test_delay_lines_carry_the_drive_rank_not_the_register(n):
    """A register of n flags fed by one input (tok2tok's match buffers) becomes lines of 4 values each, not
    4 n: the legalised states grow as n, not n^2, and keep the register's meaning."""
    src = (f"input x[1] in {{0, 1}}\nstate buf[{n}] = 0\n"
           f"buf <- shift_matrix({n}) @ buf + cat(zeros({n - 1}), x)\noutput sum(buf)\nprobe b = buf")
    g = optimize(compile_source(src, "t.lsrl").graph)[0]
    new = _legal(g, 64)
    widths = sum(nd.dim for nd in new.nodes if isinstance(nd.op, ir.LinState))
    assert widths <= 4 * (n // 3 + 1) + 2  # lines of 4 (3 lags each) and the first-step flag
    _same(g, new, np.random.default_rng(n).integers(0, 2, (3, 3 * n, 1)).astype(float))


def test_delay_lines_keep_an_integer_drive_integer():
    """A drive 2 x_0 + x_1 factors as 2 (x_0 + x_1 / 2): lines carrying x_0 + x_1 / 2 would round in floats,
    so the lines carry the integer drive itself (the full register width), as before the factoring."""
    n = 9
    src = (f"input x[2] in {{0, 1}}\nstate buf[{n}] = 0\n"
           f"buf <- shift_matrix({n}) @ buf + cat(zeros({n - 1}), 2 * x[0] + x[1])\noutput sum(buf)")
    g = optimize(compile_source(src, "t.lsrl").graph)[0]
    new = _legal(g, 64)
    lines = [nd for nd in new.nodes if isinstance(nd.op, ir.LinState) and nd.dim % n == 0 and nd.dim > n]
    assert lines and all(nd.dim == 4 * n for nd in lines)
    _same(g, new, np.random.default_rng(n).integers(0, 2, (3, 3 * n, 2)).astype(float))


@settings(max_examples=25, deadline=None)
@given(st.integers(2, 4), st.data())
def test_random_diagonalisable_states(n, data):
    """A = P D P^-1 with P a random integer matrix (unimodular: P^-1 is integer too) and D in {0, 1/2, 1}:
    legalised to a diagonal state read through P, equal to the program in exact arithmetic."""
    D = [data.draw(st.sampled_from([Fraction(0), Fraction(1, 2), Fraction(1)])) for _ in range(n)]
    L = np.array([[Fraction(data.draw(st.integers(-2, 2)) if j < i else int(i == j)) for j in range(n)]
                  for i in range(n)], dtype=object)
    U = np.array([[Fraction(data.draw(st.integers(-2, 2)) if j > i else int(i == j)) for j in range(n)]
                  for i in range(n)], dtype=object)
    P = L @ U
    A = P @ np.diag(np.array(D, dtype=object)) @ _unit_inverse(U) @ _unit_inverse(L)
    init = data.draw(st.lists(st.integers(-2, 2), min_size=n, max_size=n))
    rows = ", ".join("[" + ", ".join(str(v) for v in r) + "]" for r in A.tolist())
    src = f"input x[1] in {{-1, 0, 1}}\nstate s[{n}] = {init}\ns <- [{rows}] @ s + repeat(x, {n})\noutput s"
    g = compile_source(src, "t.lsrl").graph
    new = _legal(g, 64)
    xe = np.vectorize(Fraction, otypes=[object])(np.random.default_rng(n).integers(-1, 2, (2, 12, 1)))
    assert interpret(new, xe, exact=True).output.tolist() == interpret(g, xe, exact=True).output.tolist()


def _unit_inverse(T: np.ndarray) -> np.ndarray:
    """The inverse of a unit-triangular matrix: I - N + N^2 - ... (N = T - I is nilpotent)."""
    n = T.shape[0]
    eye = np.array([[Fraction(int(i == j)) for j in range(n)] for i in range(n)], dtype=object)
    N, out, term = T - eye, eye.copy(), eye.copy()
    for _ in range(n):
        term = -(term @ N)
        out = out + term
    return out


@pytest.mark.parametrize(("A", "why"), [("[[1, 1], [0, 1]]", "Jordan block"), ("[[1, 0], [1, 2]]", "outside")])
def test_states_no_eigenbasis_in_0_1_diagonalises_are_refused(A, why):
    src = f"input x[1] in {{0, 1}}\nstate s[2] = [0, 0]\ns <- {A} @ s + [x, x]\noutput s"
    with pytest.raises(LsrlError) as exc:
        legalize(compile_source(src, "j.lsrl").graph, "diagonal01", 64, "the hawk backend")
    assert exc.value.diagnostics[0].code == "E0706", why


def test_input_driven_rotation_is_a_located_error():
    src = "input x[1] in {0, 1}\nstate r[2] = [1, 0]\nr <- [[0, -1], [1, 0]] @ r + [x, x]\noutput r"
    g = compile_source(src, "rot.lsrl").graph
    with pytest.raises(LsrlError) as exc:
        legalize(g, "diagonal01", 64, "the mamba backend")
    d = exc.value.diagnostics[0]
    assert d.code == "E0706" and "`r`" in d.message and "reads an input" in d.message
    assert d.span.file == "rot.lsrl" and d.span.line == 2  # the declaration


def test_targets_with_any_transition_are_left_alone():
    g = load_program("programs/mod_counter.lsrl").graph
    assert legalize(g, "any", 64) == (g, None)
