"""The small shipped programs (programs/{more_ones,counter,mod_counter,parity,dyck1,running_max,window_sum}.lsrl)
against plain-Python oracles.

Hypothesis draws batches of sequences from each program's *declared* input domain (lengths 1..60, one
length per batch) and runs them through one batched `lsrl.interpret` call, for several param values.
Integer-valued outputs must match exactly; real-valued ones (window_sum) to 1e-9. Programs whose
coefficients are rational must also give the same answer in exact (Fraction) mode.
"""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lsrl
from lsrl.cli import main

ROOT = Path(__file__).resolve().parent.parent / "programs"
NAMES = ["more_ones", "counter", "mod_counter", "parity", "dyck1", "running_max", "window_sum"]
SETTINGS = settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MAX_LEN = 60


def path(name: str) -> str:
    return str(ROOT / f"{name}.lsrl")


@cache
def _program(name: str, params: tuple) -> lsrl.Program:
    return lsrl.load_program(path(name), params=dict(params) or None)


def program(name: str, **params) -> lsrl.Program:
    return _program(name, tuple(sorted(params.items())))


def tokens(prog: lsrl.Program):
    """A strategy for one token of the program's declared input domain."""
    dom = prog.input.domain
    if dom.kind == "set":
        return st.sampled_from([int(v) for v in dom.values])
    lo, hi = (float(v) for v in dom.values)
    return st.floats(lo, hi, allow_nan=False)


@st.composite
def batch(draw, prog: lsrl.Program, max_len: int = MAX_LEN, max_batch: int = 6):
    """Sequences of one common length (1..max_len) from the declared domain: a list of lists."""
    n = draw(st.integers(1, max_len))
    seq = st.lists(tokens(prog), min_size=n, max_size=n)
    return draw(st.lists(seq, min_size=1, max_size=max_batch))


def run(prog: lsrl.Program, seqs, exact: bool = False) -> lsrl.RunResult:
    if exact:
        x = np.array([[[Fraction(v)] for v in s] for s in seqs], dtype=object)
    else:
        x = np.asarray(seqs, dtype=np.float64)[:, :, None]
    return lsrl.interpret(prog.graph, x, exact=exact)


def expect(result, oracle_rows) -> None:
    """Exact equality with integer oracle rows (batch, time, dim)."""
    want = np.asarray(oracle_rows, dtype=np.float64)
    got = np.asarray(result, dtype=np.float64)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)


def same_in_exact_mode(prog: lsrl.Program, seqs, float_result: lsrl.RunResult, exact_equal: bool = True) -> None:
    ex = run(prog, seqs, exact=True)
    assert all(isinstance(v, Fraction) for v in ex.output.flat)
    got = ex.output.astype(np.float64)
    if exact_equal:
        np.testing.assert_array_equal(got, float_result.output)
    else:
        np.testing.assert_allclose(got, float_result.output, rtol=0, atol=1e-9)
    for name, arr in float_result.probes.items():
        np.testing.assert_allclose(ex.probes[name].astype(np.float64), arr, rtol=0, atol=1e-9)


# ---------------------------------------------------------------- oracles


def prefixes(s):
    return [s[: t + 1] for t in range(len(s))]


def more_ones_oracle(s):
    return [[int(p.count(1) > p.count(0))] for p in prefixes(s)]


def counter_oracle(s, token):
    return [[p.count(token)] for p in prefixes(s)]


def parity_oracle(s):
    return [[sum(p) % 2] for p in prefixes(s)]


def dyck_oracle(s):
    """[depth, valid] and ever_negative per step."""
    out, neg, depth, ever = [], [], 0, False
    for tok in s:
        depth += 1 if tok == 0 else -1
        ever = ever or depth < 0
        out.append([depth, int(depth == 0 and not ever)])
        neg.append([int(ever)])
    return out, neg


def running_max_oracle(s, V):
    outs, reached = [], []
    for p in prefixes(s):
        m = max(p)
        outs.append([m])
        reached.append([int(v <= m) for v in range(V)])
    return outs, reached


def window_oracle(s, k):
    return [[sum(s[max(0, t - k + 1): t + 1])] for t in range(len(s))]


# ---------------------------------------------------------------- more_ones


@SETTINGS
@given(data=st.data())
def test_more_ones(data):
    prog = program("more_ones")
    seqs = data.draw(batch(prog))
    res = run(prog, seqs)
    expect(res.output, [more_ones_oracle(s) for s in seqs])
    expect(res.probes["balance"], [[[2 * sum(p) - len(p)] for p in prefixes(s)] for s in seqs])


# ---------------------------------------------------------------- counter


@pytest.mark.parametrize("V,token", [(10, 3), (2, 0), (2, 1), (5, 4), (1, 0), (30, 17)])
def test_counter(V, token):
    prog = program("counter", V=V, token=token)
    assert [int(v) for v in prog.input.domain.values] == list(range(V))

    @SETTINGS
    @given(seqs=batch(prog))
    def check(seqs):
        res = run(prog, seqs)
        expect(res.output, [counter_oracle(s, token) for s in seqs])
        expect(res.probes["hit"], [[[int(v == token)] for v in s] for s in seqs])

    check()


# ---------------------------------------------------------------- mod_counter


@pytest.mark.parametrize("n", [1, 2, 3, 5, 7, 12])
def test_mod_counter(n):
    prog = program("mod_counter", n=n)

    @settings(SETTINGS, max_examples=10)
    @given(seqs=batch(prog))
    def check(seqs):
        res = run(prog, seqs)
        T = len(seqs[0])
        want = np.array([[[t % n] for t in range(T)]] * len(seqs), dtype=float)
        np.testing.assert_allclose(res.output, want, rtol=0, atol=1e-9)
        onehot = np.array([[[float(t % n == k) for k in range(n)] for t in range(T)]] * len(seqs))
        np.testing.assert_allclose(res.probes["onehot"], onehot, rtol=0, atol=1e-9)

    check()


def test_mod_counter_long_and_input_independent():
    prog = program("mod_counter", n=7)
    rng = np.random.default_rng(0)
    x = prog.input.sample(rng, 4, 1000)
    out = lsrl.interpret(prog.graph, x).output[..., 0]
    np.testing.assert_allclose(out, np.broadcast_to(np.arange(1000) % 7, (4, 1000)), rtol=0, atol=1e-9)


@pytest.mark.parametrize("n", [1, 2])
def test_mod_counter_exact_where_rational(n):
    """cos/sin of multiples of pi/2 snap to rationals, so n = 1, 2 run in exact mode."""
    prog = program("mod_counter", n=n)
    assert prog.graph.exact
    seqs = [[0] * 9, [1] * 9]
    res = run(prog, seqs, exact=True)
    expect(res.output, [[[t % n] for t in range(9)]] * 2)
    same_in_exact_mode(prog, seqs, run(prog, seqs))


def test_mod_counter_irrational_rejected_in_exact_mode():
    prog = program("mod_counter", n=5)
    assert not prog.graph.exact
    with pytest.raises(lsrl.LsrlError, match="E0501"):
        run(prog, [[0, 1]], exact=True)


# ---------------------------------------------------------------- parity


def parity_limit(max_len: int) -> int:
    """The most ones parity.lsrl is exact for: 2h, h the smallest power of two with 2h >= max_len."""
    h = 1
    while 2 * h < max_len:
        h *= 2
    return 2 * h


@pytest.mark.parametrize("max_len", [None, 60, 64, 1000])
def test_parity(max_len):
    prog = program("parity") if max_len is None else program("parity", max_len=max_len)

    @SETTINGS
    @given(seqs=batch(prog))
    def check(seqs):
        res = run(prog, seqs)
        expect(res.output, [parity_oracle(s) for s in seqs])
        expect(res.probes["ones"], [[[sum(p)] for p in prefixes(s)] for s in seqs])

    check()


@pytest.mark.parametrize("max_len", [1, 2, 3, 5, 8, 9])
def test_parity_exact_up_to_its_limit(max_len):
    """Any number of zeros, and up to the documented limit of ones (which is >= max_len)."""
    prog = program("parity", max_len=max_len)
    limit = parity_limit(max_len)
    assert limit >= max_len

    @settings(SETTINGS, max_examples=15)
    @given(st.lists(st.lists(st.integers(0, 5), min_size=limit + 1, max_size=limit + 1),
                    min_size=1, max_size=4))
    def check(gaps):
        seqs = [[tok for g in gap for tok in ([0] * g + [1])][:-1] for gap in gaps]  # `limit` ones each
        width = max(len(s) for s in seqs)
        seqs = [s + [0] * (width - len(s)) for s in seqs]
        res = run(prog, seqs, exact=True)
        expect(res.output.astype(float), [parity_oracle(s) for s in seqs])

    check()


@pytest.mark.parametrize("max_len", [1, 4, 7, 100])
def test_parity_limit_is_real(max_len):
    """One more one than the limit and the folds overshoot: the bound in the header is not slack."""
    prog = program("parity", max_len=max_len)
    limit = parity_limit(max_len)
    out = run(prog, [[1] * (limit + 1)]).output[0, :, 0]
    assert list(out[:limit]) == [(t + 1) % 2 for t in range(limit)]
    assert out[limit] != (limit + 1) % 2


# ---------------------------------------------------------------- dyck1


@SETTINGS
@given(data=st.data(), bias=st.sampled_from([None, 0, 1]))
def test_dyck1(data, bias):
    prog = program("dyck1")
    seqs = data.draw(batch(prog))
    if bias is not None:  # long runs of one symbol reach deep or negative depths
        seqs = [[bias if i % 3 else tok for i, tok in enumerate(s)] for s in seqs]
    res = run(prog, seqs)
    oracle = [dyck_oracle(s) for s in seqs]
    expect(res.output, [o for o, _ in oracle])
    expect(res.probes["ever_negative"], [n for _, n in oracle])


@pytest.mark.parametrize("text,valid", [
    ("0 1", [0, 1]),
    ("0 0 1 0 1 1", [0, 0, 0, 0, 0, 1]),
    ("1 0", [0, 0]),            # went negative: never valid again
    ("0 1 1 0 0 1", [0, 1, 0, 0, 0, 0]),
])
def test_dyck1_examples(text, valid):
    seq = [int(t) for t in text.split()]
    res = run(program("dyck1"), [seq])
    assert list(res.output[0, :, 1]) == valid


# ---------------------------------------------------------------- running_max


@pytest.mark.parametrize("V", [1, 2, 3, 10, 25])
def test_running_max(V):
    prog = program("running_max", V=V)

    @SETTINGS
    @given(seqs=batch(prog))
    def check(seqs):
        res = run(prog, seqs)
        oracle = [running_max_oracle(s, V) for s in seqs]
        expect(res.output, [o for o, _ in oracle])
        expect(res.probes["reached"], [r for _, r in oracle])

    check()


# ---------------------------------------------------------------- window_sum


@pytest.mark.parametrize("k", [1, 2, 4, 9, 70])
def test_window_sum(k):
    prog = program("window_sum", k=k)

    @SETTINGS
    @given(seqs=batch(prog))
    def check(seqs):
        res = run(prog, seqs)
        want = np.array([window_oracle(s, k) for s in seqs])
        np.testing.assert_allclose(res.output, want, rtol=0, atol=1e-9)
        window = np.array([[[s[t - k + 1 + i] if t - k + 1 + i >= 0 else 0.0 for i in range(k)]
                            for t in range(len(s))] for s in seqs])
        np.testing.assert_array_equal(res.probes["window"], window)

    check()


@pytest.mark.parametrize("k", [1, 3, 5])
@SETTINGS
@given(data=st.data())
def test_window_sum_exact_rationals(k, data):
    prog = program("window_sum", k=k)
    frac = st.fractions(-1, 1, max_denominator=50)
    n = data.draw(st.integers(1, 30))
    seqs = data.draw(st.lists(st.lists(frac, min_size=n, max_size=n), min_size=1, max_size=4))
    res = run(prog, seqs, exact=True)
    assert res.output.tolist() == window_oracle_batch(seqs, k)


def window_oracle_batch(seqs, k):
    return [[[Fraction(v[0])] for v in window_oracle(s, k)] for s in seqs]


# ---------------------------------------------------------------- exact mode == float mode

# The exact interpreter multiplies dense Fraction matrices (identity Linears included), so these use
# small params and batches; the float tests above cover the larger ones.
EXACT_CASES = [
    ("more_ones", {}), ("counter", {"V": 4, "token": 2}), ("parity", {}), ("parity", {"max_len": 60}),
    ("dyck1", {}), ("running_max", {"V": 4}), ("window_sum", {"k": 3}), ("mod_counter", {"n": 2}),
]


@pytest.mark.parametrize("name,params", EXACT_CASES, ids=[f"{n}-{p}" for n, p in EXACT_CASES])
def test_exact_equals_float(name, params):
    prog = program(name, **params)
    assert prog.graph.exact

    @settings(SETTINGS, max_examples=8)
    @given(seqs=batch(prog, max_batch=3))
    def check(seqs):
        same_in_exact_mode(prog, seqs, run(prog, seqs), exact_equal=name != "window_sum")

    check()


# ---------------------------------------------------------------- CLI


@pytest.mark.parametrize("name", NAMES)
def test_cli_check(name, capsys):
    assert main(["check", path(name)]) == 0
    assert capsys.readouterr().out.startswith(f"ok: {path(name)}")


def test_cli_run_dyck1(capsys):
    assert main(["run", path("dyck1"), "--input", "0 0 1 1 1 0", "--exact"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert lines == ["1 0", "2 0", "1 0", "0 1", "-1 0", "0 0"]


def test_cli_run_with_define(capsys):
    assert main(["run", path("counter"), "-D", "token=7", "--input", "7 1 7 7 0"]) == 0
    assert capsys.readouterr().out.split() == ["1", "1", "2", "3", "3"]
