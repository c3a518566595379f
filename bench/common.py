"""Shared helpers for benchmarks: timing and markdown tables."""

from __future__ import annotations

import gc
import time
from collections.abc import Callable


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


def table(headers: list[str], rows: list[list[object]]) -> str:
    out = ["| " + " | ".join(headers) + " |", "|" + "---|" * len(headers)]
    out += ["| " + " | ".join(str(c) for c in r) + " |" for r in rows]
    return "\n".join(out)
