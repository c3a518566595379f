"""A sampler of random, well-formed LSRL programs, and `zoo`: many of them compiled for benchmark suites.

`sample_program(rng, size, constructs)` writes LSRL source: an integer-token input, `size` let-bindings
each drawn from `constructs` (arithmetic, comparisons and boolean logic from the prelude, states:
`accumulate`, `counter`, `delay`, flag-gated products, general products, max/min/abs) over earlier values,
and an output. `is_nontrivial(program)` checks what makes a program worth a benchmark: its output depends
on the input, is not constant over time, and it keeps a state. `zoo(n, out_dir, backends, seed)` samples
`n` programs, compiles each on every backend (a refusal is recorded with its code), and writes the sources,
the checkpoints and `zoo.json` / `zoo.csv` with what each model computes.
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np

NUMERIC = ["add", "sub", "scale", "relu", "max", "min", "abs", "accumulate", "delay", "gated", "product",
           "counter"]
BOOLEAN = ["larger", "smaller", "eq", "and", "or", "not"]
CONSTRUCTS = NUMERIC + BOOLEAN


def sample_program(rng: np.random.Generator, size: int = 6, constructs=CONSTRUCTS, vocab: int = 4) -> str:
    """LSRL source of a random program over `size` let-bindings."""
    nums, flags = ["x[0]"], []
    lines = [f"input x[1] in {{0..{vocab - 1}}}", ""]
    for i in range(size):
        kind = str(rng.choice(list(constructs)))
        if kind in BOOLEAN and kind in ("and", "or") and len(flags) < 2 or kind == "not" and not flags:
            kind = "larger"
        name = f"v{i}"
        a, b = (str(rng.choice(nums)) for _ in range(2))
        k = int(rng.integers(0, vocab))
        expr = {
            "add": f"{a} + {b}", "sub": f"{a} - {b}", "scale": f"{int(rng.integers(2, 4))} * {a}",
            "relu": f"relu({a} - {k})", "max": f"max({a}, {b})", "min": f"min({a}, {b})", "abs": f"abs({a} - {k})",
            "accumulate": f"accumulate({a})", "delay": f"delay({a})", "counter": "counter()",
            "product": f"{a} * {b}",
            "larger": f"larger({a}, {b}, 1)", "smaller": f"smaller({a}, {k}, 1)", "eq": f"eq({a}, {k}, 1)",
        }.get(kind)
        if kind == "gated":
            expr = f"{rng.choice(flags)} * {a}" if flags else f"larger({a}, {k}, 1) * {b}"
        elif kind in ("and", "or"):
            f, g = rng.choice(flags, 2, replace=False)
            expr = f"{kind}({f}, {g})"
        elif kind == "not":
            expr = f"not({rng.choice(flags)})"
        lines.append(f"let {name} = {expr}")
        (flags if kind in BOOLEAN else nums).append(name)
    chosen = list(rng.choice(nums + flags, min(2, len(nums + flags)), replace=False))
    lines += ["", f"output {' + '.join(chosen)}"]
    return "\n".join(lines) + "\n"


def is_nontrivial(program, length: int = 16, seed: int = 0) -> bool:
    from lsrl.ir import graph as ir
    from lsrl.ir.interpreter import interpret

    rng = np.random.default_rng(seed)
    x = program.input.sample(rng, 8, length)
    y = interpret(program.graph, x).output
    depends = not np.allclose(y, y[:1])  # different inputs, different outputs
    varies = not np.allclose(y, y[:, :1])  # not constant over time
    stateful = any(isinstance(n.op, ir.LinState) for n in program.graph.nodes)
    return bool(depends and varies and stateful)


def zoo(n: int, out_dir, backends=None, seed: int = 0, size: int = 6, max_len: int = 256,
        checkpoints: bool = True) -> list[dict]:
    """Sample, compile and describe `n` programs (see the module docstring); returns the table's rows."""
    from lsrl.backends import BACKENDS
    from lsrl.compiling import CompileOptions, compile_program
    from lsrl.diagnostics import LsrlError
    from lsrl.frontend.elaborate import compile_source
    from lsrl.runtime.checkpoint import save_checkpoint

    backends = list(backends or sorted(BACKENDS))
    out = Path(out_dir)
    (out / "programs").mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    rows = []
    for i in range(n):
        source = sample_program(rng, size)
        name = f"p{i:05d}"
        path = out / "programs" / f"{name}.lsrl"
        path.write_text(source)
        prog = compile_source(source, str(path))
        row = {"program": name, "file": f"programs/{name}.lsrl", "nodes": len(prog.graph.nodes),
               "nontrivial": is_nontrivial(prog)}
        for b in backends:
            try:
                c = compile_program(prog, CompileOptions(b, max_len=max_len))
                p = c.promise()
                row[b] = f"{p.output.exactness} (bound {p.output.abs_bound:.2g})"
                if checkpoints:
                    save_checkpoint(c, out / "models" / f"{name}-{b}")
            except LsrlError as exc:
                row[b] = f"refused ({exc.diagnostics[0].code})"
        rows.append(row)
    (out / "zoo.json").write_text(json.dumps(rows, indent=1) + "\n")
    with open(out / "zoo.csv", "w", newline="") as fh:
        w = csv.DictWriter(fh, fieldnames=list(rows[0]) if rows else ["program"])
        w.writeheader()
        w.writerows(rows)
    return rows
