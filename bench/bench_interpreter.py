"""Interpreter throughput: tok2tok (T=3) on 64 sequences of 123 tokens, as in the reference figures."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from bench.common import best_of, table
from lsrl import interpret, load_program

ROOT = Path(__file__).resolve().parent.parent


def tok2tok_batch(T: int, pairs: int, batch: int, seed: int = 0) -> np.ndarray:
    """Valid tok2tok inputs: a query then `pairs` key/value pairs whose keys include the query."""
    rng = np.random.default_rng(seed)
    seqs = []
    for _ in range(batch):
        keys = set()
        while len(keys) < pairs:
            keys.add(tuple(rng.integers(0, 10, T)))
        keys = list(keys)
        query = keys[rng.integers(len(keys))]
        prompt = [tok for k in keys for tok in (*k, *rng.integers(0, 10, T))]
        seqs.append([*query, *prompt])
    return np.array(seqs, dtype=np.float64)[..., None]


def run(repeat: int = 5) -> str:
    rows = []
    for gated in (1, 0):
        prog = load_program(str(ROOT / "programs/tok2tok.lsrl"), {"T": 3, "gated": gated})
        x = tok2tok_batch(3, 20, 64)
        secs = best_of(lambda prog=prog, x=x: interpret(prog.graph, x), repeat)
        tokens = x.shape[0] * x.shape[1]
        rows.append([f"tok2tok T=3 gated={gated}", f"{x.shape[0]} x {x.shape[1]}", f"{secs * 1e3:.1f} ms",
                     f"{tokens / secs:,.0f}", "~100 (1 sequence, reference)"])
    return table(["program", "batch x tokens", "interpreter time", "tokens/s", "reference tokens/s"], rows)


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--repeat", type=int, default=5)
    print(run(ap.parse_args().repeat))
