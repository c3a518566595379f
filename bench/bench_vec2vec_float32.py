"""vec2vec (paper Lst. 1) in float32 against the function it approximates (issue #15). Per backend and cell-edge
width eps: the float64 model's error against the target function f at the query (the discretisation's own
error: the model answers f at the centre of the query's cell), the float32 model's measured error against the
exact interpreter, and the float32 bound the compiler states; the bound should be at most 10x the float64
model's error against f.

    python -m bench.bench_vec2vec_float32 [--backend lrnn rnn] [--eps 6 8 10] [--gated 0 1] [--n 256]
"""

from __future__ import annotations

import argparse
from fractions import Fraction

import numpy as np
import torch

import lsrl
from lsrl.diagnostics import LsrlError
from lsrl.interpretability.generators import vec2vec_prompts
from lsrl.ir.interpreter import interpret

D, E, N = 2, 2, 4


def run(compiled, x: np.ndarray, dtype) -> np.ndarray:
    with torch.no_grad():
        y = compiled.module(torch.tensor(x, dtype=dtype))
    return y.double().numpy()[:, -1]


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--backend", nargs="+", default=["lrnn", "rnn"])
    ap.add_argument("--eps", type=int, nargs="+", default=[6, 8, 10], help="eps = 2^-k")
    ap.add_argument("--gated", type=int, nargs="+", default=[0, 1])
    ap.add_argument("--n", type=int, default=256)
    args = ap.parse_args(argv)
    print("| backend | gated | eps | f64 model vs f: max / mean | f32 model vs exact | f32 bound | bound / f64 max |")
    print("|---|---|---|---|---|---|---|")
    for name in args.backend:
        for gated in args.gated:
            for k in args.eps:
                print(f"| {name} | {gated} | 2^-{k} | " + row(name, gated, k, args.n), flush=True)


def row(name: str, gated: int, k: int, n: int) -> str:
    """The measured columns for one configuration (a refusal instead, where the compiler refuses)."""
    params = {"eps": Fraction(1, 2 ** k), "max_abs": 1, "gated": gated}
    x, target = vec2vec_prompts(np.random.default_rng(0), n, 1 + N ** D, D, E, N, 2.0 ** -k)
    try:
        c64 = lsrl.compile("programs/vec2vec.lsrl", name, dtype="float64", params=params, max_len=x.shape[1])
        c32 = lsrl.compile("programs/vec2vec.lsrl", name, dtype="float32", params=params, max_len=x.shape[1])
        d64 = np.abs(run(c64, x, torch.float64) - target)
        bound = c32.promise().outputs["output"].abs_bound
    except LsrlError as exc:
        return f"refused ({exc.diagnostics[0].code}) | | | |"
    exact = interpret(c32.program.reference_graph, x, exact=True).output[:, -1].astype(np.float64)
    e32 = float(np.abs(run(c32, x, torch.float32) - exact).max())
    return f"{d64.max():.3g} / {d64.mean():.3g} | {e32:.2g} | {bound:.3g} | {bound / d64.max():.2g} |"


if __name__ == "__main__":
    main()
