"""`lsrl verify` over every shipped program, backend and dtype: 256 sequences of length 256 each."""

from __future__ import annotations

from pathlib import Path

from bench.common import table
from lsrl import LsrlError, load_program
from lsrl.compile import CompileOptions
from lsrl.verify import verify

ROOT = Path(__file__).resolve().parent.parent


def run(samples: int = 256, length: int = 256) -> str:
    rows = []
    for path in sorted(ROOT.glob("programs/*.lsrl")):
        prog = load_program(str(path))
        for backend in ("lrnn", "rnn"):
            for dtype in ("float64", "float32"):
                try:
                    r = verify(prog, CompileOptions(backend, dtype=dtype), samples=samples, length=length)
                except LsrlError as exc:
                    rows.append([path.stem, backend, dtype, "-", "-", "-", "-",
                                 f"does not compile: {exc.diagnostics[0].code}"])
                    continue
                share = f"{100 * r.exact_share:.2f}%" if r.exact_share is not None else "-"
                certified = "arithmetic certified exact" in r.promise_note
                rows.append([path.stem, backend, dtype, f"{r.max_abs:.2g}", f"{r.max_rel:.2g}",
                             f"{r.promised_rel:.2g}" + (" (certified)" if certified else ""), share, _verdict(r)])
    return table(["program", "backend", "dtype", "max abs err", "max rel err", "promised rel", "exact tokens",
                  "verdict"], rows) + LEGEND


LEGEND = """

"promised rel" is the backend's float rounding budget for the dtype; "(certified)" marks a dtype in which
the model's arithmetic is proven exact (integer weights and inputs, every partial sum below 2^24 or
2^53: `lsrl/certify.py`), so only the float64 reference interpreter's own budget remains."""


def _verdict(r) -> str:
    if r.passed:
        return "pass"
    return "FAIL" if r.bounded else "no useful bound (see docs/backends.md)"


if __name__ == "__main__":
    print(run())
