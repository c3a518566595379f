"""Interventions: the interpreter and the compiled model, patched alike, agree on every backend."""

from __future__ import annotations

import numpy as np
import pytest
from lsrl.backends import BACKENDS
from shipped import compiled

from lsrl import interpret
from lsrl.diagnostics import LsrlError
from lsrl.interpretability import Intervention, intervene, node_of
from lsrl.runtime.checkpoint import build_manifest


@pytest.mark.parametrize("backend", sorted(BACKENDS))
@pytest.mark.parametrize("name", ["more_ones", "parity", "mod_counter", "dyck1"])
def test_patching_any_value_from_another_input_matches_the_interpreter(backend, name):
    """Each materialized value set, at steps 3 and 7, to its value on another input: the model's outputs
    and probes are the intervened interpreter's, or the intervention is refused (E1002) because it drives
    some value outside the range the model was compiled for."""
    prog, c = compiled(backend, name)
    x, x2 = (prog.input.sample(np.random.default_rng(s), 4, 20) for s in (0, 1))
    other = interpret(c.graph, x2, trace=True)
    done = 0
    for node in sorted({p.node for p in c.emitted.placements}):
        try:
            ref, y, probes = intervene(c, x, [Intervention(node, (3, 7), other.values[node])])
        except LsrlError as exc:
            assert exc.diagnostics[0].code == "E1002"
            continue
        np.testing.assert_allclose(y, ref.output, rtol=0, atol=1e-9)
        for k, p in probes.items():
            np.testing.assert_allclose(p, ref.probes[k], rtol=0, atol=1e-9)
        done += 1
    assert done > 0


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_state_set_mid_sequence_evolves_from_there(backend):
    prog, c = compiled(backend, "more_ones")
    x = np.array([[[1], [0], [0], [1], [1], [0], [1], [1]]], dtype=float)
    node = node_of(build_manifest(c), "balance")
    clean = interpret(c.graph, x).output
    value = np.full((1, 8, 1), 2.0)  # balance jumps to 2 at step 2 (reachable: 1 1 ...)
    ref, y, _ = intervene(c, x, [Intervention(node, (2,), value)])
    assert not np.array_equal(ref.output, clean)  # the patch changes what follows
    np.testing.assert_allclose(y, ref.output, rtol=0, atol=1e-9)
    assert ref.output[0, 2:, 0].tolist() == [1.0, 1.0, 1.0, 1.0, 1.0, 1.0]  # 2, 1, 2, 3, 2, 3 stay > 0


def test_out_of_range_interventions_are_refused():
    _, c = compiled("rnn", "more_ones")
    node = node_of(build_manifest(c), "balance")
    with pytest.raises(LsrlError) as exc:
        intervene(c, np.zeros((1, 8, 1)), [Intervention(node, (2,), np.full((1, 8, 1), 1000.0))])
    assert exc.value.diagnostics[0].code == "E1002" and exc.value.diagnostics[0].span is not None
