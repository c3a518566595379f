"""Compile time of tok2tok against its key length T on every registered backend (issue #16: range analysis
without a cliff). Per (backend, T): seconds for `lsrl.compile` (parse, optimise, analyse, lower, emit) plus the
promise; then the fitted exponent of time ~ T^k per backend. `--phases`: the same time split by the driver's
steps (lsrl/compiling.py), each timed where the driver calls it. `--repeat N`: the best of N runs (each step's
best, with --phases). Without --phases, a second table gives each model's parameter count and the compile time
per parameter.

    python -m bench.bench_tok2tok_scaling [--T 8 16 32 64 128] [--backend rnn ...] [--phases] [--repeat N]
"""

from __future__ import annotations

import argparse
import math
import time
from contextlib import contextmanager

from lsrl.backends import BACKENDS, get_backend

import lsrl
import lsrl.compiling as driver

PROGRAM = "programs/tok2tok.lsrl"
STEPS = ["optimize", "legalize_mapped", "range_facts", "lower"]  # what compile_program calls, by name


def _fit(ts: list[int], secs: list[float]) -> float:
    """Least-squares slope of log(seconds) against log(T)."""
    xs, ys = [math.log(t) for t in ts], [math.log(s) for s in secs]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sum((x - mx) ** 2 for x in xs)


@contextmanager
def _timed(backend: str, spent: dict[str, float]):
    """Accumulate into `spent` the seconds of each driver step and of the backend's emit."""
    def wrap(fn, key):
        def timed(*args, **kwargs):
            t0 = time.perf_counter()
            try:
                return fn(*args, **kwargs)
            finally:
                spent[key] = spent.get(key, 0.0) + time.perf_counter() - t0
        return timed

    saved = {name: getattr(driver, name) for name in STEPS}
    be = get_backend(backend)
    emit = be.emit
    try:
        for name in STEPS:
            setattr(driver, name, wrap(saved[name], name))
        be.emit = wrap(emit, "emit")
        yield
    finally:
        for name in STEPS:
            setattr(driver, name, saved[name])
        del be.emit  # the instance attribute goes; the class's method shows again


def phases(backend: str, t: int) -> dict[str, float]:
    """Seconds per step of compiling and promising tok2tok at key length t."""
    spent: dict[str, float] = {}
    t0 = time.perf_counter()
    program = lsrl.load_program(PROGRAM, {"T": t})
    spent["elaborate"] = time.perf_counter() - t0
    with _timed(backend, spent):
        compiled = lsrl.compile(program, backend)
    t0 = time.perf_counter()
    compiled.promise()
    spent["promise"] = time.perf_counter() - t0
    return spent


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--T", type=int, nargs="+", default=[8, 16, 32, 64, 128])
    ap.add_argument("--backend", nargs="+", default=None)
    ap.add_argument("--phases", action="store_true", help="split each time by the driver's steps")
    ap.add_argument("--repeat", type=int, default=1, help="report the best of this many runs")
    args = ap.parse_args(argv)
    names = args.backend or list(BACKENDS)
    if args.phases:
        keys = ["elaborate", *STEPS, "emit", "promise"]
        print("| backend | T | " + " | ".join(keys) + " | total |")
        print("|---|---|" + "---|" * (len(keys) + 1))
        for name in names:
            for t in args.T:
                runs = [phases(name, t) for _ in range(args.repeat)]
                spent = {k: min(r[k] for r in runs) for k in runs[0]}
                cells = " | ".join(f"{spent.get(k, 0.0):.2f}" for k in keys)
                print(f"| {name} | {t} | {cells} | {sum(spent.values()):.2f} |", flush=True)
        return
    print("| backend | " + " | ".join(f"T={t}" for t in args.T) + " | exponent |")
    print("|---|" + "---|" * (len(args.T) + 1))
    sizes = {}
    for name in names:
        secs = []
        for t in args.T:
            best = math.inf
            for _ in range(args.repeat):
                t0 = time.perf_counter()
                compiled = lsrl.compile(PROGRAM, name, params={"T": t})
                compiled.promise()
                best = min(best, time.perf_counter() - t0)
            secs.append(best)
            sizes[name, t] = (compiled.parameter_count(), best)
        cells = " | ".join(f"{s:.1f} s" for s in secs)
        print(f"| {name} | {cells} | {_fit(args.T, secs):.2f} |", flush=True)
    # the model a compile writes: dense weights whose count grows as T^2 bound any compile time from below
    print("\n| backend | " + " | ".join(f"T={t}: parameters, us each" for t in args.T) + " |")
    print("|---|" + "---|" * len(args.T))
    for name in names:
        cells = " | ".join(f"{sizes[name, t][0]:,}, {1e6 * sizes[name, t][1] / sizes[name, t][0]:.2f}" for t in args.T)
        print(f"| {name} | {cells} |")


if __name__ == "__main__":
    main()
