"""Run the CPU benchmarks and write docs/benchmarks.md (the scan-kernel section is kept from its own run)."""

from __future__ import annotations

import platform
import sys
import time
from pathlib import Path

import torch

from bench import bench_compile, bench_interpreter, bench_verify

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SCAN_HEADING = "## Scan kernels"  # that section comes from bench/bench_scan.py (GPU) and is kept as is

HEADER = """# Benchmarks

Measured by `python -m bench.run_all` on {machine} ({cores} cores), torch {torch}, {date}; compile times
are the best of {repeat} runs ({other} for `gru` and `lstm`), with the garbage collector paused. Every
registered backend is measured: {backends}.
Reference figures are those recorded in `../shared/reference/reference_figures.md` for the reference
LSRL implementation (github.com/AleksandarPetrov/LSRL @ 2675cd1) on a 2-core x86-64 machine; they were
not re-measured here. "parameters" counts every tensor of the compiled model; the reference counts every
matrix of its simplified path graph.
"""


def main() -> None:
    parts = [HEADER.format(machine=platform.machine(), cores=torch.get_num_threads(), torch=torch.__version__,
                           date=time.strftime("%Y-%m-%d"), repeat=bench_compile.COMPILE_REPEAT,
                           other=bench_compile.OTHER_COMPILE_REPEAT,
                           backends=", ".join(f"`{b}`" for b in bench_compile.backends()))]
    for heading, section in [("## Interpreter", bench_interpreter.run),
                             ("## Compile time and model size (tok2tok: paper Lst. 2, vec2vec: Lst. 1)",
                              bench_compile.run),
                             ("## `lsrl verify` on every shipped program", bench_verify.run)]:
        t0 = time.perf_counter()
        parts += [heading, "", section(), ""]
        print(f"{heading.lstrip('# ')}: {time.perf_counter() - t0:.0f} s", file=sys.stderr)
    old = DOC.read_text() if DOC.exists() else ""
    if SCAN_HEADING in old:
        parts += [old[old.index(SCAN_HEADING):]]
    DOC.write_text("\n".join(parts))
    print(DOC.read_text())


if __name__ == "__main__":
    main()
