"""Shared helpers for benchmarks: timing and markdown tables."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable, Sequence


def time_once(fn: Callable[[], object]) -> float:
    """Wall time of one call, in seconds; like timeit, the garbage collector is paused while timing so that
    one call does not pay for another's garbage."""
    gc.collect()
    gc.disable()
    try:
        t0 = time.perf_counter()
        fn()
        return time.perf_counter() - t0
    finally:
        gc.enable()


def best_of(fn: Callable[[], object], repeat: int = 5) -> float:
    """Minimum wall time of `repeat` calls, in seconds (the least-disturbed run)."""
    return min(time_once(fn) for _ in range(repeat))


def best_of_rounds(fns: Sequence[Callable[[], object]], repeat: int) -> list[float]:
    """best_of for each function, timed in rounds over all of them rather than one after another: a slow
    spell of a shared machine (seconds long) then costs each function one of its runs, not all of them."""
    best = [float("inf")] * len(fns)
    for _ in range(repeat):
        for i, fn in enumerate(fns):
            best[i] = min(best[i], time_once(fn))
    return best


def table(headers: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
