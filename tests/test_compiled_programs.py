"""Compiled models of the shipped programs: verify passes per backend/dtype; tok2tok answers correctly."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS

from lsrl import load_program
from lsrl.compiling import CompileOptions, compile_program
from lsrl.verifying import verify

ROOT = Path(__file__).parent.parent
# vec2vec reads a continuous input through 1e6-steep ramps: float64 verifies on some backends, others and float32
# refuse (E0708); tests/test_propagate.py and tests/test_fidelity.py cover it
PROGRAMS = [p for p in sorted(ROOT.glob("programs/*.lsrl")) if p.stem != "vec2vec"]
DISCRETE = ["counter", "dyck1", "mod_counter", "more_ones", "parity", "running_max", "window_sum"]


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("path", PROGRAMS, ids=lambda p: p.stem)
def test_verify_float64(path, backend):
    prog = load_program(str(path))
    report = verify(prog, CompileOptions(backend, max_len=512), samples=32, length=96, seed=1)
    assert report.passed, report.lines()
    assert report.max_rel <= 1e-9


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", DISCRETE)
def test_verify_float32(name, backend):
    """The small programs verify in float32 too, within the bound the compiler states."""
    prog = load_program(str(ROOT / f"programs/{name}.lsrl"))
    report = verify(prog, CompileOptions(backend, dtype="float32", max_len=256), samples=32, length=256, seed=2)
    assert report.passed, report.lines()


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("T", [2, 8])
def test_tok2tok_verifies_in_float32_at_the_default_max_len(backend, T):
    """tok2tok in float32 up to max_len 4096, with a stated bound below 1/2 on its token output: its rotation
    counters are lifted to exact one-hots and what remains is integer arithmetic within float32's range."""
    prog = load_program(str(ROOT / "programs/tok2tok.lsrl"), {"T": T})
    report = verify(prog, CompileOptions(backend, dtype="float32"), samples=16, length=128, seed=3)
    assert report.passed, report.lines()
    out = report.promise.output
    assert report.promise.max_len == 4096 and out.integer and out.allowed < 0.5 and out.exact_after_rounding
    assert report.exact_share == 1.0


def tok2tok_inputs(T: int, pairs: int, batch: int, seed: int):
    rng = np.random.default_rng(seed)
    xs, want = [], []
    for _ in range(batch):
        keys = set()
        while len(keys) < pairs:
            keys.add(tuple(int(v) for v in rng.integers(0, 10, T)))
        keys = list(keys)
        values = [tuple(int(v) for v in rng.integers(0, 10, T)) for _ in keys]
        j = int(rng.integers(len(keys)))
        xs.append([*keys[j], *[t for k, v in zip(keys, values, strict=True) for t in (*k, *v)]])
        want.append(values[j])
    return np.array(xs, dtype=np.float64)[..., None], np.array(want, dtype=np.float64)


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("gated", [1, 0])
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_tok2tok_compiled_answers(backend, gated, dtype):
    """The last T outputs are the queried value; the ReLU-only variant included (the reference's is not)."""
    T = 3
    prog = load_program(str(ROOT / "programs/tok2tok.lsrl"), {"T": T, "gated": gated})
    model = compile_program(prog, CompileOptions(backend, dtype=dtype, max_len=4096)).module
    x, want = tok2tok_inputs(T, 20, 32, seed=gated)
    with torch.no_grad():
        y = model(torch.tensor(x, dtype=getattr(torch, dtype))).double().numpy()
    np.testing.assert_array_equal(np.round(y[:, -T:, 0]), want)
    assert np.abs(y[:, -T:, 0] - want).max() < 1e-3


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_tok2tok_compiles_past_the_old_enumeration_cliff(backend):
    """Range analysis used to give up on tok2tok's switches from T = 32 on (support enumeration capped at 32
    members: the 2T components of one orbit counted one by one), so rnn refused its gates with E0701; mamba
    needed minutes and gigabytes from T = 32 (delay lines as wide as the register, squared). At T = 40 every
    switch is proven 0/1 and the compiled model answers. (T up to 128 on every backend: bench.)"""
    T = 40
    prog = load_program(str(ROOT / "programs/tok2tok.lsrl"), {"T": T})
    compiled = compile_program(prog, CompileOptions(backend, max_len=4096))
    facts = compiled.facts
    for n in compiled.graph.nodes:
        if n.label in ("is_prompt", "is_compare", "is_copy", "first_copy", "matching", "all_matching", "start",
                       "copy_on", "buf", "started"):
            assert facts.ranges.is_boolean(n.id), facts.ranges.describe(n.id)
    x, want = tok2tok_inputs(T, 6, 4, seed=5)
    with torch.no_grad():
        y = compiled.module(torch.tensor(x)).numpy()
    np.testing.assert_array_equal(y[:, -T:, 0], want)
