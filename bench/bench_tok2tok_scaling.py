"""Compile time of tok2tok against its key length T on every registered backend (issue #16: range analysis
without a cliff). Per (backend, T): seconds for `lsrl.compile` (parse, optimise, analyse, lower, emit) plus the
promise, and whether every switch is proven 0/1; then the fitted exponent of time ~ T^k per backend.

    python -m bench.bench_tok2tok_scaling [--T 8 16 32 64 128] [--backend rnn ...]
"""

from __future__ import annotations

import argparse
import math
import time

from lsrl.backends import BACKENDS

import lsrl


def _fit(ts: list[int], secs: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(T)."""
    xs, ys = [math.log(t) for t in ts], [math.log(s) for s in secs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--backend", nargs="+", default=None)
    args = ap.parse_args(argv)
    names = args.backend or list(BACKENDS)
    print("| backend | " + " | ".join(f"T={t}" for t in args.T) + " | exponent |")
    print("|---|" + "---|" * (len(args.T) + 1))
    for name in names:
        secs = []
        for t in args.T:
            t0 = time.perf_counter()
            compiled = lsrl.compile("programs/tok2tok.lsrl", name, params={"T": t})
            compiled.promise()
            secs.append(time.perf_counter() - t0)
        cells = " | ".join(f"{s:.1f} s" for s in secs)
        print(f"| {name} | {cells} | {_fit(args.T, secs):.2f} |", flush=True)


if __name__ == "__main__":
    main()
