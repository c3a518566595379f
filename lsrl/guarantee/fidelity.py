"""The fidelity matrix: what each backend promises for each shipped program, in float32 and float64.

    python -m lsrl.guarantee.fidelity            # print the table
    python -m lsrl.guarantee.fidelity --write    # rewrite it in docs/backends.md (between the markers)

Each cell is the promise on the program's output at the default max_len: `exact` / `float-exact` (the
bound is 0), `exact after rounding` (an integer output within less than 1/2), `bounded` (a useful bound,
given), `no useful bound` (the bound, given) or `refused` (the diagnostic's code). It comes from the
promises alone (no sampling), so it is deterministic; tests/test_fidelity.py checks that the docs match.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from lsrl.backends import BACKENDS
from lsrl.compiling import DTYPES, CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.frontend.elaborate import load_program

ROOT = Path(__file__).resolve().parents[2]
DOC = ROOT / "docs" / "backends.md"
BEGIN = "<!-- fidelity matrix: begin (python -m lsrl.guarantee.fidelity --write) -->"
END = "<!-- fidelity matrix: end -->"


def cell(program, backend: str, dtype: str) -> str:
    try:
        compiled = compile_program(program, CompileOptions(backend, dtype=dtype))
        o = compiled.promise(dtype).output
    except LsrlError as exc:
        return f"refused ({exc.diagnostics[0].code})"
    if o.abs_bound == 0:
        return o.exactness
    if o.exact_after_rounding:
        return f"exact after rounding (<= {o.abs_bound:.2g})"
    scale = max(compiled.facts.magnitudes(compiled.graph.output), default=1.0)  # the output's proven range
    return f"{'bounded' if o.useful(scale) else 'no useful bound'} ({o.abs_bound:.2g})"


def matrix(programs: list[Path] | None = None) -> str:
    programs = programs or sorted((ROOT / "programs").glob("*.lsrl"))
    names = sorted(BACKENDS)
    head = ["program", "dtype", *(f"`{b}`" for b in names)]
    rows = []
    for path in programs:
        prog = load_program(str(path))
        for dtype in DTYPES:
            rows.append([path.stem, dtype, *(cell(prog, b, dtype) for b in names)])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(lines)


def section(text: str) -> str:
    """The matrix as it stands between the markers of `text`."""
    return text[text.index(BEGIN) + len(BEGIN):text.index(END)].strip()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m lsrl.guarantee.fidelity", description=__doc__.splitlines()[0])
    ap.add_argument("--write", action="store_true", help=f"rewrite the matrix in {DOC.relative_to(ROOT)}")
    args = ap.parse_args(argv)
    table = matrix()
    if not args.write:
        print(table)
        return 0
    text = DOC.read_text()
    DOC.write_text(text[:text.index(BEGIN) + len(BEGIN)] + "\n" + table + "\n" + text[text.index(END):])
    return 0


if __name__ == "__main__":
    sys.exit(main())
