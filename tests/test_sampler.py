"""The program sampler and `lsrl zoo`: well-formed programs, compiled on every backend that accepts them,
each model within its promise; a share of them non-trivial."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS

from lsrl.cli import main
from lsrl.compiling import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.frontend.elaborate import compile_source
from lsrl.interpretability.sampler import is_nontrivial, sample_program
from lsrl.ir.interpreter import interpret


def _run(n: int, seed: int) -> tuple[int, dict]:
    rng = np.random.default_rng(seed)
    nontrivial, outcomes = 0, {}
    for i in range(n):
        source = sample_program(rng)
        prog = compile_source(source, f"p{i}.lsrl")  # well-formed: never a diagnostic
        nontrivial += is_nontrivial(prog)
        x = prog.input.sample(np.random.default_rng(i), 2, 24)
        ref = interpret(prog.graph, x).output
        for b in sorted(BACKENDS):
            try:
                c = compile_program(prog, CompileOptions(b, max_len=64))
            except LsrlError as exc:  # a refusal is a diagnostic (rnn: a product of two non-booleans)
                outcomes[(b, exc.diagnostics[0].code)] = outcomes.get((b, exc.diagnostics[0].code), 0) + 1
                continue
            with torch.no_grad():
                err = float(np.abs(c.module(torch.tensor(x)).numpy() - ref).max())
            assert err <= c.promise().output.allowed, (b, err, source)
            outcomes[(b, "ok")] = outcomes.get((b, "ok"), 0) + 1
    return nontrivial, outcomes


def test_sampled_programs_compile_within_their_promise():
    nontrivial, outcomes = _run(40, seed=0)
    assert all(outcomes.get((b, "ok"), 0) > 0 for b in BACKENDS)
    assert set(code for _, code in outcomes) <= {"ok", "E0701"}
    assert 0 < nontrivial < 40


@pytest.mark.slow
def test_a_thousand_sampled_programs():
    nontrivial, outcomes = _run(1000, seed=1)
    assert set(code for _, code in outcomes) <= {"ok", "E0701"} and nontrivial > 100


def test_zoo_cli(tmp_path, capsys):
    assert main(["zoo", "--n", "3", "--backends", "rnn,gru", "-o", str(tmp_path / "zoo")]) == 0
    rows = json.loads((tmp_path / "zoo" / "zoo.json").read_text())
    assert len(rows) == 3 and all({"rnn", "gru", "nontrivial", "file"} <= set(r) for r in rows)
    assert (tmp_path / "zoo" / "zoo.csv").read_text().startswith("program,")
    assert (tmp_path / "zoo" / rows[0]["file"]).exists()
    assert main(["zoo", "--n", "1", "--backends", "nope", "-o", str(tmp_path / "z2")]) == 1
