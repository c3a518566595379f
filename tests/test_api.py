"""docs/api.md is true: its code blocks run in order, from the repository root, and what they print is real."""

from __future__ import annotations

import os
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "api.md"


def test_the_api_page_runs(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)
    assert len(blocks) >= 5
    scope: dict = {}
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), scope)  # noqa: S102 - the documentation's own examples
    out = capsys.readouterr().out
    assert "E0101 2 8" in out  # the Errors example's comment is what it prints
    assert scope["report"].passed and scope["p"].outputs["output"].abs_bound == 0
    assert os.path.isdir(scope["hf_dir"]) and scope["np"].abs(scope["y"] - scope["ref"].output).max() < 1e-9


def test_compile_and_verify_take_programs_paths_and_source():
    import lsrl

    src = "input x[1] in {0, 1}\nparam k = 2\noutput k * accumulate(x)\n"
    a = lsrl.compile(src, "rnn", params={"k": 3})
    b = lsrl.compile(lsrl.compile_source(src, "s.lsrl", {"k": 3}), "rnn")
    assert a.promise().outputs["output"].abs_bound == b.promise().outputs["output"].abs_bound == 0
    assert lsrl.verify(ROOT / "programs" / "counter.lsrl", "mamba", samples=4, length=16).passed
    with pytest.raises(TypeError, match="already elaborated"):
        lsrl.compile(a.program, params={"k": 1})
    with pytest.raises(lsrl.LsrlError) as exc:
        lsrl.compile("input x[1]\noutput nope\n")
    assert exc.value.diagnostics[0].span.file == "<source>"
