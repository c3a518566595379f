"""programs/tok2tok.lsrl (paper Lst. 2, the discrete map emulator) against plain-Python oracles.

Inputs are `query ++ (key ++ value) ++ (key ++ value) ++ ...` with distinct keys, as in the reference
test. Hypothesis draws batches of random maps (1..8 pairs, keys biased towards near-misses of the
query); examples of equal length run together through one batched `lsrl.interpret` call.
"""

from __future__ import annotations

from collections import defaultdict
from functools import cache
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import lsrl
from lsrl.ir import graph as ir

PROGRAM = str(Path(__file__).resolve().parent.parent / "programs" / "tok2tok.lsrl")
ATOL = 1e-6
CASES = [(T, g) for T in range(1, 6) for g in (1, 0)]
SETTINGS = settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@cache
def program(T: int, gated: int, V: int = 10, max_len: int | None = None) -> lsrl.Program:
    params = {"T": T, "gated": gated, "V": V}
    if max_len is not None:
        params["max_len"] = max_len
    return lsrl.load_program(PROGRAM, params=params)


# ---------------------------------------------------------------- examples


def build_input(query, pairs) -> list[int]:
    return list(query) + [tok for k, v in pairs for tok in (*k, *v)]


@st.composite
def lookup(draw, T: int, V: int):
    """(query, pairs, value): pairs with distinct keys, one of which is the query, and its value."""
    tok = st.integers(0, V - 1)
    query = tuple(draw(st.lists(tok, min_size=T, max_size=T)))
    # other keys copy each query token or draw a fresh one: many share a prefix/suffix with the query
    near = st.tuples(*[st.one_of(st.just(q), tok) for q in query])
    others = [k for k in draw(st.lists(near, max_size=7, unique=True)) if k != query]
    keys = list(others)
    keys.insert(draw(st.integers(0, len(others))), query)
    values = [tuple(draw(st.lists(tok, min_size=T, max_size=T))) for _ in keys]
    pairs = list(zip(keys, values, strict=True))
    return query, pairs, values[keys.index(query)]


def batches(examples):
    """Group examples by input length: {length: [(input, query, pairs, value), ...]}."""
    groups = defaultdict(list)
    for query, pairs, value in examples:
        seq = build_input(query, pairs)
        groups[len(seq)].append((seq, query, pairs, value))
    return groups.values()


def run(prog: lsrl.Program, seqs: list[list[int]]) -> lsrl.RunResult:
    x = np.asarray(seqs, dtype=np.float64)[:, :, None]
    return lsrl.interpret(prog.graph, x)


# ---------------------------------------------------------------- oracle of the construction


def oracle(seq: list[int], T: int) -> dict[str, np.ndarray]:
    """Every probe and the output per step, (time, dim), computed the way the paper's program works."""
    L = len(seq)
    t = np.arange(L)
    modT, mod2T = t % T, t % (2 * T)
    is_prompt = (t >= T).astype(float)
    is_compare = (mod2T >= T).astype(float)
    is_copy = is_prompt * (1 - is_compare)
    first_copy = is_copy * (modT == 0)
    query = np.zeros((L, T))
    matching = np.zeros(L)
    buf = np.zeros((L, T + 1))
    all_matching = np.zeros(L)
    start = np.zeros(L)
    started = np.zeros((L, T))
    copy_on = np.zeros(L)
    reg = np.zeros((L, T))
    out = np.zeros(L)
    q, r = np.zeros(T), np.zeros(T)
    for i in range(L):
        if i < T:
            q[i] = seq[i]
        query[i] = q
        matching[i] = float(is_compare[i] == 1 and seq[i] == q[i % T])
        buf[i] = [matching[j] if j >= 0 else 0.0 for j in range(i - T, i + 1)]
        all_matching[i] = float(buf[i, :T].sum() == T)
        start[i] = float(all_matching[i] == 1 and first_copy[i] == 1)
        started[i] = [start[j] if j >= 0 else 0.0 for j in range(i - T + 1, i + 1)]
        copy_on[i] = float(is_copy[i] == 1 and started[i].any())
        if copy_on[i]:
            r[i % T] += seq[i]
        reg[i] = r
        out[i] = r[i % T]
    col = lambda *cols: np.stack(cols, axis=1)  # noqa: E731
    return {
        "counters": col(t, modT, mod2T),
        "switches": col(t, is_prompt, is_compare, is_copy, first_copy),
        "query_reg": query,
        "matches": np.concatenate([matching[:, None], buf, all_matching[:, None]], axis=1),
        "copying": np.concatenate([started, copy_on[:, None], reg], axis=1),
        "output": out[:, None],
    }


def test_oracle_on_a_worked_example():
    """The oracle itself, on a hand-checked input (T = 2): query (3, 4) matches the second key."""
    seq = build_input((3, 4), [((3, 5), (1, 1)), ((3, 4), (7, 8)), ((4, 3), (2, 2))])
    o = oracle(seq, 2)
    assert o["copying"][:, 1].tolist() == [0] * 8 + [1] + [0] * 5  # the value starts at step 8
    assert o["copying"][:, 2].tolist() == [0] * 8 + [1, 1] + [0] * 4  # and is copied for T = 2 steps
    assert o["output"][-2:, 0].tolist() == [7, 8]
    assert o["matches"][:, 0].tolist() == [0, 0, 1, 0, 0, 0, 1, 1, 0, 0, 0, 0, 0, 0]


# ---------------------------------------------------------------- tests


@pytest.mark.parametrize("T,gated", CASES)
def test_last_T_outputs_are_the_value(T, gated):
    prog = program(T, gated)

    @SETTINGS
    @given(st.lists(lookup(T, 10), min_size=1, max_size=10))
    def check(examples):
        for group in batches(examples):
            res = run(prog, [g[0] for g in group])
            for b, (_, _, _, value) in enumerate(group):
                np.testing.assert_allclose(res.output[b, -T:, 0], value, rtol=0, atol=ATOL)

    check()


@pytest.mark.parametrize("T,gated", CASES)
def test_probes_and_output_trace_follow_the_construction(T, gated):
    """Counters, switches, query register, matching buffer, start flags/registers and the full output
    trace, per step, against the oracle (the reference test's test_counters .. test_copying)."""
    prog = program(T, gated)

    @SETTINGS
    @given(st.lists(lookup(T, 10), min_size=1, max_size=6))
    def check(examples):
        for group in batches(examples):
            res = run(prog, [g[0] for g in group])
            for b, (seq, *_rest) in enumerate(group):
                want = oracle(seq, T)
                got = dict(res.probes, output=res.output)
                for name, expected in want.items():
                    np.testing.assert_allclose(got[name][b], expected, rtol=0, atol=ATOL, err_msg=name)

    check()


@pytest.mark.parametrize("T,V", [(2, 2), (3, 3), (4, 2)])
@pytest.mark.parametrize("gated", [1, 0])
def test_small_vocabularies(T, V, gated):
    """Tiny vocabularies: keys differ from the query in few positions, the hardest case for matching."""
    prog = program(T, gated, V)

    @settings(max_examples=8, deadline=None)
    @given(st.lists(lookup(T, V), min_size=1, max_size=8))
    def check(examples):
        for group in batches(examples):
            res = run(prog, [g[0] for g in group])
            for b, (seq, _, _, value) in enumerate(group):
                np.testing.assert_allclose(res.output[b, -T:, 0], value, rtol=0, atol=ATOL)
                np.testing.assert_allclose(res.output[b], oracle(seq, T)["output"], rtol=0, atol=ATOL)

    check()


@pytest.mark.parametrize("gated", [1, 0])
def test_match_in_last_and_first_pair(gated):
    T = 3
    pairs = [((1, 2, 3), (4, 5, 6)), ((1, 2, 4), (7, 8, 9)), ((0, 2, 3), (1, 1, 1))]
    prog = program(T, gated)
    seqs = [build_input(k, pairs) for k, _ in pairs]
    res = run(prog, seqs)
    for b, (_, v) in enumerate(pairs):
        np.testing.assert_allclose(res.output[b, -T:, 0], v, atol=ATOL)


@pytest.mark.parametrize("gated", [1, 0])
def test_query_without_a_matching_key_outputs_zeros(gated):
    pairs = [((1, 2, 3), (4, 5, 6)), ((1, 2, 4), (7, 8, 9))]
    res = run(program(3, gated), [build_input((1, 2, 5), pairs)])
    np.testing.assert_allclose(res.output[0, :, 0], 0, atol=ATOL)
    np.testing.assert_allclose(res.probes["copying"][0, :, 0], 0, atol=ATOL)


@pytest.mark.parametrize("gated", [1, 0])
def test_long_prompt_up_to_max_len(gated):
    """682 pairs (4095 tokens, just under max_len = 4096), the match last: the rotation counters and,
    for gated = 0, the ReLU conditionals with big = 4096 stay exact over the whole sequence."""
    T, V = 3, 10
    rng = np.random.default_rng(1)
    keys = sorted({tuple(int(v) for v in rng.integers(0, V, T)) for _ in range(2000)})[:682]
    rng.shuffle(keys)
    values = [tuple(int(v) for v in rng.integers(0, V, T)) for _ in keys]
    pairs = list(zip(keys, values, strict=True))
    seqs = [build_input(keys[-1], pairs), build_input(keys[0], pairs)]
    assert len(seqs[0]) == 4095
    res = run(program(T, gated), seqs)
    np.testing.assert_allclose(res.output[0, -T:, 0], values[-1], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.output[1, -T:, 0], values[0], rtol=0, atol=ATOL)
    np.testing.assert_allclose(res.probes["counters"][0], oracle(seqs[0], T)["counters"], rtol=0, atol=ATOL)


def test_relu_only_big_covers_repeated_matches():
    """gated = 0 sets big = V * max_len: the registers exceed V only when several keys match (each match adds
    its value), at most max_len times. With every key equal to the query the ReLU-only model still agrees
    with the gated one; with big too small (max_len = 2: big = 20) the other register leaks into the output."""
    T = 2
    seq = build_input((5, 5), [((5, 5), (9, 9))] * 8)  # the registers reach 72
    gated = run(program(T, 1), [seq]).output[0, -1, 0]
    assert gated == pytest.approx(72, abs=ATOL)
    assert run(program(T, 0), [seq]).output[0, -1, 0] == pytest.approx(gated, abs=ATOL)
    assert run(program(T, 0, 10, max_len=2), [seq]).output[0, -1, 0] != pytest.approx(gated, abs=0.5)


@pytest.mark.parametrize("gated", [1, 0])
def test_gated_switch_controls_multiplicative_gates(gated):
    g = program(3, gated).graph
    has_multi = any(isinstance(n.op, ir.Multi) for n in g.nodes)
    assert has_multi == bool(gated)
