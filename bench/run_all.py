"""Run the CPU benchmarks and write docs/benchmarks.md (the scan-kernel section is kept from its own run)."""

from __future__ import annotations

import platform
import time
from pathlib import Path

import torch

from bench import bench_compile, bench_interpreter, bench_verify

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "benchmarks.md"
SCAN_HEADING = "## Scan kernels"  # that section comes from bench/bench_scan.py (GPU) and is kept as is

HEADER = """# Benchmarks

Measured by `python -m bench.run_all` on {machine} ({cores} cores), torch {torch}, {date}; compile times
are the best of {repeat} runs, with the garbage collector paused.
Reference figures are those recorded in `../shared/reference/reference_figures.md` for the reference
LSRL implementation (github.com/AleksandarPetrov/LSRL @ 2675cd1) on a 2-core x86-64 machine; they were
not re-measured here. "parameters" counts every tensor of the compiled model; the reference counts every
matrix of its simplified path graph.
"""


def main() -> None:
    parts = [HEADER.format(machine=platform.machine(), cores=torch.get_num_threads(), torch=torch.__version__,
                           date=time.strftime("%Y-%m-%d"), repeat=bench_compile.COMPILE_REPEAT)]
    parts += ["## Interpreter", "", bench_interpreter.run(), ""]
    parts += ["## Compile time and model size (tok2tok: paper Lst. 2, vec2vec: Lst. 1)", "",
              bench_compile.run(), ""]
    parts += ["## `lsrl verify` on every shipped program", "", bench_verify.run(), ""]
    old = DOC.read_text() if DOC.exists() else ""
    if SCAN_HEADING in old:
        parts += [old[old.index(SCAN_HEADING):]]
    DOC.write_text("\n".join(parts))
    print(DOC.read_text())


if __name__ == "__main__":
    main()
