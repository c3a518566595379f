"""Clean/corrupted input pairs and the metric that activation patching is scored with.

`corrupt(program, x, positions, seed)` changes the tokens at `positions` to other values of the input
domain; `tok2tok_pairs(T, n, seed)` builds key/value prompts for programs/tok2tok.lsrl whose corrupted
copy asks for another key (the query tokens changed, the pairs kept), laid out as the `tok2tok` input
generator lays them out (lsrl.interpretability.generators). `recovered(clean, corrupted,
patched)` is the share of the clean-vs-corrupted output difference a patch restores (1: all of it, 0:
none), per sequence, on the last step by default.
"""

from __future__ import annotations

import numpy as np

from lsrl.interpretability.generators import distinct_keys, tok2tok_prompt


def corrupt(program, x: np.ndarray, positions, seed: int = 0) -> np.ndarray:
    """A copy of x whose tokens at `positions` (steps) differ from the originals, drawn from the domain."""
    rng = np.random.default_rng(seed)
    out = np.array(x, dtype=np.float64, copy=True)
    dom = program.input.domain
    for t in positions:
        for b in range(out.shape[0]):
            for _ in range(100):
                new = program.input.sample(rng, 1, 1)[0, 0]
                if not np.array_equal(new, out[b, t]) or dom is None:
                    break
            out[b, t] = new
    return out


def tok2tok_pairs(T: int, n: int, seed: int = 0, pairs: int = 6, vocab: int = 10):
    """(clean, corrupted, answer_clean, answer_corrupted): prompts `query, k_1, v_1, ..., k_m, v_m` (each T
    tokens) with distinct keys; the corrupted prompt queries another of its keys. The program answers with
    the queried value on the last T steps."""
    rng = np.random.default_rng(seed)
    clean, bad, want, want_bad = [], [], [], []
    for _ in range(n):
        ks = distinct_keys(rng, pairs, T, vocab)
        vs = rng.integers(0, vocab, (pairs, T))
        i, j = rng.choice(pairs, 2, replace=False)
        clean.append(tok2tok_prompt(ks[i], ks, vs))
        bad.append(tok2tok_prompt(ks[j], ks, vs))
        want.append(vs[i])
        want_bad.append(vs[j])
    as_x = lambda rows: np.array(rows, dtype=np.float64)[..., None]  # noqa: E731
    return as_x(clean), as_x(bad), np.array(want, dtype=np.float64), np.array(want_bad, dtype=np.float64)


def recovered(clean: np.ndarray, corrupted: np.ndarray, patched: np.ndarray, steps=slice(-1, None)) -> np.ndarray:
    """Per sequence: (patched - corrupted) / (clean - corrupted) over the chosen steps' outputs (summed over
    them), nan where clean and corrupted agree."""
    num = (patched[:, steps] - corrupted[:, steps]).reshape(len(clean), -1)
    den = (clean[:, steps] - corrupted[:, steps]).reshape(len(clean), -1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.sum(num * den, axis=1) / np.sum(den * den, axis=1)
