"""Golden diagnostics: every malformed program in tests/diagnostics/ gives exactly its .txt, exit status 1."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lsrl.cli import main

HERE = Path(__file__).parent / "diagnostics"
CASES = sorted(p.stem for p in HERE.glob("*.lsrl"))


def _check(name: str, capsys) -> tuple[int, str]:
    cwd = os.getcwd()
    os.chdir(HERE)
    try:
        rc = main(["check", f"{name}.lsrl"])
    finally:
        os.chdir(cwd)
    out = capsys.readouterr()
    assert out.out == ""
    return rc, out.err


def test_there_are_enough_cases():
    assert len(CASES) >= 30


@pytest.mark.parametrize("name", CASES)
def test_golden(name, capsys):
    rc, err = _check(name, capsys)
    expected = (HERE / f"{name}.txt").read_text()
    assert rc == 1
    assert err == expected


def _cli(args: list[str], capsys) -> tuple[int, str]:
    rc = main(args)
    return rc, capsys.readouterr().err


PROGRAM = "input x[1] in {0, 1}\nparam k = 2\nstate s = 0\ns <- s + k * x\noutput s\n"

BAD_CLI = [
    (["run", "{prog}", "--input", "1 a 0"], "error[E0901]: input token 1 `a` is not a number"),
    (["run", "{prog}", "--input", "1 0,1"], "error[E0902]: input token 1 `0,1` has 2 component(s)"),
    (["run", "{prog}", "--input", "   "], "error[E0903]: the input sequence is empty"),
    (["run", "{prog}", "--input", "1 nan"], "error[E0901]: input token 1 `nan` is not a finite number"),
    (["run", "{prog}", "--input", "0 -inf"], "error[E0901]: input token 1 `-inf` is not a finite number"),
    (["run", "{prog}", "--input", "1", "-D", "q=3"], "error[E0405]: -D q: the program has no `param q`"),
    (["run", "{prog}", "--input", "1", "-D", "k"], "error[E0410]: -D k: expected NAME=VALUE"),
    (["run", "{prog}", "--input", "1", "-D", "k=(("], "error[E0410]: -D k=((: the value is not a constant"),
    (["check", "{prog}", "-D", "k=fast"], "error[E0410]: -D k=fast: the value is not a constant expression"),
    (["check", "{prog}", "-D", "k=1/0"], "error[E0410]: -D k=1/0: the value is not a constant expression"),
    (["run", "{prog}"], "error[E0900]: one of the arguments --input --input-file is required"),
    (["run", "{prog}", "--input-file", "/nonexistent/tokens"], "error[E0904]: cannot read /nonexistent/tokens"),
    (["check", "/nonexistent/prog.lsrl"], "error[E0000]: cannot read /nonexistent/prog.lsrl"),
    (["frobnicate"], "error[E0900]: argument command: invalid choice: 'frobnicate'"),
    (["verify", "{prog}", "--samples", "-3"], "error[E0900]: argument --samples: -3 is below 1"),
    (["verify", "{prog}", "--length", "0"], "error[E0900]: argument --length: 0 is below 1"),
    (["verify", "{prog}", "--seed", "x"], "error[E0900]: argument --seed: 'x' is not an integer"),
    (["compile", "{prog}", "--max-len", "0", "-o", "out"], "error[E0900]: argument --max-len: 0 is below 1"),
    (["obfuscate", "{prog}", "--noise", "nan", "-o", "out"], "error[E0900]: argument --noise: nan is not a finite"),
    (["obfuscate", "{prog}", "--noise", "-1", "-o", "out"], "error[E0900]: argument --noise: -1 is not a finite"),
    (["run", "{prog}", "--exact", "--input", "1e999"], "error[E0901]: input token 0 `1e999` is not a finite number"),
    (["graph", "{prog}", "-o", ""], "error[E0908]: cannot write the picture to ``"),
    (["verify", "{prog}", "--max-len", "100000000", "--samples", "100000", "--length", "100000000"],
     "error[E0704]: --samples 100000 x --length 100000000 x input width 1 is 10,000,000,000,000 values"),
]


@pytest.mark.parametrize("args,expected", BAD_CLI)
def test_bad_cli_input(args, expected, tmp_path, capsys):
    prog = tmp_path / "p.lsrl"
    prog.write_text(PROGRAM)
    rc, err = _cli([a.replace("{prog}", str(prog)) for a in args], capsys)
    assert rc == (2 if "E0900" in expected else 1)  # usage errors exit 2, program errors 1
    assert expected in err
    assert "Traceback" not in err


def test_define_with_a_bare_name_is_e0410_with_a_hint(tmp_path, capsys):
    prog = tmp_path / "p.lsrl"
    prog.write_text(PROGRAM)
    rc, err = _cli(["check", str(prog), "-D", "k=x"], capsys)
    assert rc == 1
    assert "E0101" not in err
    assert err == ("error[E0410]: -D k=x: the value is not a constant expression (unknown name `x`)\n"
                   "  = hint: write -D NAME=VALUE with VALUE like 3, 1/3 or [1, 2]\n")


def test_param_override_changes_result(tmp_path, capsys):
    prog = tmp_path / "p.lsrl"
    prog.write_text(PROGRAM)
    assert main(["run", str(prog), "--input", "1 0 1", "-D", "k=1/3"]) == 0
    assert [float(v) for v in capsys.readouterr().out.split()] == [1 / 3, 1 / 3, 2 / 3]
    assert main(["run", str(prog), "--input", "1 0 1", "-D", "k=1/3", "--exact"]) == 0
    assert capsys.readouterr().out.split() == ["1/3", "1/3", "2/3"]


def test_console_script_exits_1_without_traceback(tmp_path):
    prog = tmp_path / "bad.lsrl"
    prog.write_text("input x[1]\nstate s = 0\ns <- relu(s)\noutput s\n")
    proc = subprocess.run([sys.executable, "-m", "lsrl", "check", str(prog)], capture_output=True, text=True)
    assert proc.returncode == 1
    assert "error[E0301]" in proc.stderr and "Traceback" not in proc.stderr


@pytest.mark.parametrize("args", [["check", "{prog}"], ["ir", "{prog}"], ["run", "{prog}", "--input", "1 0 1"]])
def test_commands_that_need_no_model_do_not_import_torch(args, tmp_path):
    """check, ir and run parse, optimise and interpret: torch (1.5 s to import) stays unloaded."""
    import subprocess
    import sys

    prog = tmp_path / "p.lsrl"
    prog.write_text(PROGRAM)
    code = ("import sys; from lsrl.cli import main; rc = main(sys.argv[1:]); "
            "sys.exit(rc if 'torch' not in sys.modules else 99)")
    done = subprocess.run([sys.executable, "-c", code, *[a.replace("{prog}", str(prog)) for a in args]],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


def test_huge_compile_time_powers_are_refused_not_computed(capsys, tmp_path):
    prog = tmp_path / "p.lsrl"
    prog.write_text("input x[1] in {0, 1}\noutput x + 10 ** 10 ** 10\n")
    rc, err = _cli(["check", str(prog)], capsys)
    assert rc == 1 and "error[E0226]" in err and "p.lsrl:2:12" in err


def test_matpow_squares_its_way_to_huge_exponents(capsys, tmp_path):
    """matpow multiplied k times (hours for k = 10 ** 400, found by the mutation fuzzer); by squaring it is
    log2(k) products, and one whose entries outgrow the constant limit is refused like `**`."""
    import numpy as np

    from lsrl import compile_source, interpret

    for k in (0, 1, 10, 13):
        src = f"input x[1] in {{0, 1}}\nlet m = matpow([[1, 1], [1, 0]], {k})\noutput x * m[0][1] + m[1][1]\n"
        got = interpret(compile_source(src, "t.lsrl").graph, np.ones((1, 1, 1))).output[0, 0, 0]
        want = np.linalg.matrix_power(np.array([[1, 1], [1, 0]]), k)
        assert got == want[0, 1] + want[1, 1]
    prog = tmp_path / "p.lsrl"
    prog.write_text("input x[1] in {0, 1}\nlet m = matpow([[0, 1], [1, 0]], 10 ** 400)\noutput x * m[0][0]\n")
    assert _cli(["check", str(prog)], capsys)[0] == 0
    prog.write_text("input x[1] in {0, 1}\nlet m = matpow([[2]], 10 ** 400)\noutput x * m[0][0]\n")
    rc, err = _cli(["check", str(prog)], capsys)
    assert rc == 1 and "error[E0226]" in err and "p.lsrl:2:9" in err


def test_nesting_that_exhausts_the_recursion_limit_is_a_located_diagnostic(monkeypatch):
    from lsrl.diagnostics import LsrlError
    from lsrl.frontend import elaborate

    def exhausted(self, module):
        raise RecursionError

    monkeypatch.setattr(elaborate.Elaborator, "program", exhausted)
    src = "input x[1] in {0, 1}\noutput ((((x))))\n"
    with pytest.raises(LsrlError) as exc:
        elaborate.compile_source(src, "deep.lsrl")
    d = exc.value.diagnostics[0]
    assert d.code == "E0005" and (d.span.line, d.span.col) == (2, 11)  # the innermost bracket


def test_verify_json_report(capsys):
    import json
    from pathlib import Path

    root = Path(__file__).parent.parent
    rc = main(["verify", str(root / "programs/more_ones.lsrl"), "--backend", "lstm", "--json", "--samples", "4",
               "--length", "16"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["passed"] is True and report["backend"] == "lstm"
    assert report["promise"]["max_len"] == 4096 and set(report["errors"]) == {"output", "balance"}


def test_check_and_compile_json_reports(tmp_path, capsys):
    """--json: one JSON document on stdout, summaries for good files and located diagnostics for bad ones
    (exit 1 if any is bad), for check and for compile, its failures included."""
    import json

    good, bad = tmp_path / "good.lsrl", tmp_path / "bad.lsrl"
    good.write_text("input x[1] in {0, 1}\nlet s = accumulate(x)\nprobe s = s\noutput s\n")
    bad.write_text("input x[1]\noutput nope\n")
    rc = main(["check", str(good), str(bad), "--json"])
    out = capsys.readouterr()
    files = json.loads(out.out)["files"]
    assert rc == 1 and out.err == "" and [f["ok"] for f in files] == [True, False]
    assert files[0]["input"] == {"name": "x", "dim": 1, "domain": "{0, 1}"} and files[0]["probes"] == ["s"]
    d = files[1]["diagnostics"][0]
    assert d["code"] == "E0101" and d["span"]["line"] == 2 and d["span"]["file"] == str(bad)
    rc = main(["compile", str(good), "--backend", "hawk", "-o", str(tmp_path / "ck"), "--json"])
    report = json.loads(capsys.readouterr().out)
    assert rc == 0 and report["ok"] and report["backend"] == "hawk" and report["promise"]["max_len"] == 4096
    rot = tmp_path / "rot.lsrl"
    rot.write_text("input x[1] in {0, 1}\nstate r[2] = [1, 0]\nr <- [[0, -1], [1, 0]] @ r + [x, x]\noutput r\n")
    rc = main(["compile", str(rot), "--backend", "mamba", "-o", str(tmp_path / "ck2"), "--json"])
    out = capsys.readouterr()
    report = json.loads(out.out)
    assert rc == 1 and not report["ok"] and report["diagnostics"][0]["code"] == "E0706"
    assert "error[E0706]" in out.err  # a person reading the terminal still sees the rendered diagnostic


def test_unused_bindings_warn_once_without_failing(tmp_path, capsys):
    """W0001 for a `let` or state never read (a state read only by its own update included): once per
    declaration though a function runs it twice; not for `_` names, prelude internals, or a name read in a
    branch these params leave out."""
    src = tmp_path / "w.lsrl"
    src.write_text("param fast = 1\ninput x[1] in {0, 1}\nlet big = 9\nlet unused = x\nlet _quiet = x\n"
                   "def f(v) {\n  let tmp = 2 * v\n  if fast {\n    return v\n  }\n  return big * v\n}\n"
                   "state dead = 0\ndead <- dead + x\noutput f(x) + f(2 * x) + accumulate(x)\n")
    rc = main(["check", str(src)])
    err = capsys.readouterr().err
    assert rc == 0 and err.count("warning[W0001]") == 3
    for name, line in (("unused", 4), ("tmp", 7), ("dead", 13)):
        assert f"w.lsrl:{line}:" in err and f"`{name}` is never read" in err
    assert "big" not in err and "_quiet" not in err


def test_verify_reports_progress_per_batch_and_only_on_a_terminal(capsys):
    import lsrl
    from lsrl.compiling import CompileOptions
    from lsrl.verifying import verify

    root = Path(__file__).parent.parent
    calls = []
    verify(lsrl.load_program(str(root / "programs/counter.lsrl")), CompileOptions("rnn"), samples=100, length=8,
           batch=32, progress=lambda done, total: calls.append((done, total)))
    total = calls[-1][1]
    assert [d for d, _ in calls] == [*range(32, total, 32), total] and total > 100  # edge cases come on top
    main(["verify", str(root / "programs/counter.lsrl"), "--samples", "4", "--length", "8"])
    assert "sequences" not in capsys.readouterr().err  # stderr is no terminal here: no bar


@pytest.mark.parametrize(("source", "code"), [
    ("input x[1000000000000]\noutput x\n", "E0228"),
    ("input x[1] in {0, 1}\nlet m = [[i + j for j in range(3000)] for i in range(3000)]\noutput x\n", "E0227"),
    ("input x[1] in {0, 1}\nlet v = [i for i in range(100000)]\noutput x\n", "E0228"),
    ("input x[1] in {0, 1}\nlet m = eye(100000)\noutput x\n", "E0227"),
    ("input x[1] in {0, 1}\nlet v = repeat(1, 5000000)\noutput x\n", "E0227"),
    ("input x[1] in {0, 1}\noutput repeat(x, 100000)\n", "E0228"),
    ("input x[60000] in {0, 1}\noutput relu(x)\n", "E0228"),  # dense 60000^2 weight algebra: 27 GiB
    ("input x[1] in {0, 1}\nlet r = range(21e309 * 3)\noutput x\n", "E0219"),  # len() overflowed (fuzz)
])
def test_limits_refuse_before_anything_large_is_built(source, code, tmp_path, capsys, monkeypatch):
    import time

    from lsrl.frontend import limits

    monkeypatch.setattr(limits, "MAX_ELEMENTS", 200_000)  # the mechanism, quickly (the default is 2,000,000)
    prog = tmp_path / "p.lsrl"
    prog.write_text(source)
    t0 = time.perf_counter()
    rc, err = _cli(["check", str(prog)], capsys)
    assert rc == 1 and f"error[{code}]" in err and "p.lsrl:" in err
    assert time.perf_counter() - t0 < 10  # refused early (a 5000 x 5000 comprehension would take minutes)


def test_run_reads_standard_input(tmp_path, monkeypatch, capsys):
    import io

    prog = tmp_path / "p.lsrl"
    prog.write_text(PROGRAM)
    monkeypatch.setattr("sys.stdin", io.StringIO("1 0 1\n"))
    rc, _ = _cli(["run", str(prog), "--input-file", "-"], capsys)
    assert rc == 0


def test_check_takes_several_files_and_run_traces_chosen_names(tmp_path, capsys):
    good, bad = tmp_path / "good.lsrl", tmp_path / "bad.lsrl"
    good.write_text(PROGRAM)
    bad.write_text("input x[1]\noutput y\n")
    rc = main(["check", str(good), str(bad), str(good)])
    out, err = capsys.readouterr()
    assert rc == 1 and out.count("ok: ") == 2 and "bad.lsrl:2" in err  # every file checked, errors reported
    assert main(["run", str(good), "--input", "1 1", "--trace", "s"]) == 0
    assert capsys.readouterr().out.splitlines() == ["2\t# s=2", "4\t# s=4"]
    rc, err = _cli(["run", str(good), "--input", "1", "--trace", "nope"], capsys)
    assert rc == 1 and "error[E0907]" in err


def test_output_folders_are_not_overwritten_without_force(tmp_path, capsys):
    prog = tmp_path / "p.lsrl"
    prog.write_text(PROGRAM)
    out = tmp_path / "ck"
    assert main(["compile", str(prog), "-o", str(out)]) == 0
    rc, err = _cli(["compile", str(prog), "-o", str(out)], capsys)
    assert rc == 1 and "error[E0908]" in err
    assert main(["compile", str(prog), "-o", str(out), "--force"]) == 0
    rc, err = _cli(["compile", str(prog), "-o", ""], capsys)
    assert rc == 1 and "error[E0908]" in err


@pytest.mark.parametrize(("T", "code"), [(3000, "E0227"), (100000, "E0228")])
def test_a_huge_tok2tok_is_refused_before_its_dense_matrices_are_built(T, code, capsys):
    """T = 3000: every elementwise op on a 3000-wide one-hot would build a dense 3000 x 3000 matrix of
    Fractions (minutes and GBs); the work budget counts them and refuses in about a second. T = 100000 (the
    issue's 74.5 GiB run): the prelude's comprehension over range(T) is refused before its first item."""
    import time
    from pathlib import Path

    prog = Path(__file__).resolve().parent.parent / "programs" / "tok2tok.lsrl"
    t0 = time.perf_counter()
    rc, err = _cli(["run", str(prog), "-D", f"T={T}", "--input", "1 2 3"], capsys)
    assert rc == 1 and f"error[{code}]" in err and "Traceback" not in err
    assert time.perf_counter() - t0 < 30


def test_version_closed_pipe_and_trace_output_path(tmp_path):
    """`--version` exits 0; a reader that closes the pipe early (`| head -1`) ends the command quietly; trace's
    -o must name a file in an existing folder (E0908), and an over-long input sequence is refused (E0909)."""
    lsrl_cmd = [sys.executable, "-m", "lsrl"]
    v = subprocess.run([*lsrl_cmd, "--version"], capture_output=True, text=True)
    assert v.returncode == 0 and v.stdout.startswith("lsrl ")
    root = Path(__file__).resolve().parent.parent
    pipe = subprocess.run(" ".join([*lsrl_cmd, "ir", str(root / "programs/tok2tok.lsrl"), "-D", "T=8"]) + " | head -1",
                          shell=True, capture_output=True, text=True)
    assert pipe.returncode == 0 and pipe.stdout.count("\n") == 1 and pipe.stderr == ""
    prog = tmp_path / "p.lsrl"
    prog.write_text(PROGRAM)
    ck = tmp_path / "ck"
    assert main(["compile", str(prog), "-o", str(ck)]) == 0
    for bad in ("", str(tmp_path), str(tmp_path / "missing" / "t.safetensors")):
        r = subprocess.run([*lsrl_cmd, "trace", str(ck), "--input", "1 0", "-o", bad], capture_output=True, text=True)
        assert r.returncode == 1 and "error[E0908]" in r.stderr and "Traceback" not in r.stderr
    r = subprocess.run([*lsrl_cmd, "run", str(prog), "--input", "1 0 1"], capture_output=True, text=True,
                       env={**os.environ, "LSRL_MAX_TOKENS": "2"})
    assert r.returncode == 1 and "error[E0909]" in r.stderr


def test_fused_weights_beyond_float64_are_refused_where_they_fuse(capsys, tmp_path):
    """Each weight fits a float64, their product does not: optimisation refuses at the node that fuses them,
    exact (10^300 x 10^300) or inexact (a float rounding to inf), with no traceback; --no-opt keeps both."""
    for scale in ("10 ** 300", "cos(1 / 2) * 1e300"):
        prog = tmp_path / "p.lsrl"
        prog.write_text(f"input x[1] in [0, 1]\nlet y = {scale} * x\noutput {scale} * y\n")
        rc, err = _cli(["compile", str(prog), "-o", str(tmp_path / "out"), "--force"], capsys)
        assert rc == 1 and "error[E0709]" in err and "p.lsrl:3:8" in err and "Traceback" not in err


def test_non_finite_params_from_python_are_refused():
    import lsrl
    from lsrl.diagnostics import LsrlError

    with pytest.raises(LsrlError, match="E0410.*not a finite number"):
        lsrl.compile(str(Path(__file__).parent.parent / "programs/parity.lsrl"), params={"max_len": float("inf")})
