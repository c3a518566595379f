"""Clean/corrupted pairs and the recovery metric: patching the right variable recovers the clean answer."""

from __future__ import annotations

import numpy as np
import pytest
from lsrl.backends import BACKENDS
from shipped import compiled

from lsrl import interpret
from lsrl.interpretability import Intervention, intervene, node_of
from lsrl.interpretability.pairs import corrupt, recovered, tok2tok_pairs
from lsrl.runtime.checkpoint import build_manifest


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_patching_the_query_register_recovers_the_clean_answer(backend):
    """tok2tok's corrupted prompt asks for another key; patching the `query` register from the clean run
    into it, at every step, restores the clean answer in full (metric 1) in the interpreter and the model
    alike; patching nothing restores none of it (metric 0)."""
    _, c = compiled(backend, "tok2tok")
    x, xb, want, want_bad = tok2tok_pairs(3, 6, seed=1)
    clean, bad = interpret(c.graph, x, trace=True), interpret(c.graph, xb, trace=True)
    assert np.array_equal(clean.output[:, -3:, 0], want) and np.array_equal(bad.output[:, -3:, 0], want_bad)
    query = node_of(build_manifest(c), "query")
    steps = tuple(range(x.shape[1]))
    ref, y, _ = intervene(c, xb, [Intervention(query, steps, clean.values[query])])
    last = slice(-3, None)
    np.testing.assert_allclose(recovered(clean.output, bad.output, y, last), 1.0, rtol=0, atol=1e-9)
    np.testing.assert_allclose(recovered(clean.output, bad.output, ref.output, last), 1.0, rtol=0, atol=1e-12)
    np.testing.assert_allclose(recovered(clean.output, bad.output, bad.output, last), 0.0)


def test_corrupt_changes_exactly_the_chosen_steps():
    prog, _ = compiled("lrnn", "counter")
    x = prog.input.sample(np.random.default_rng(0), 5, 12)
    xc = corrupt(prog, x, [2, 7], seed=3)
    changed = np.any(xc != x, axis=-1)
    assert changed[:, [2, 7]].all() and not np.delete(changed, [2, 7], axis=1).any()
    assert set(np.unique(xc)) <= set(float(v) for v in prog.input.domain.values)
