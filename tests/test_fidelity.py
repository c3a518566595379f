"""The fidelity matrix in docs/backends.md is what the promises say (regenerated and compared)."""

from __future__ import annotations

from lsrl.backends import BACKENDS

from lsrl.guarantee import fidelity


def test_the_documented_fidelity_matrix_is_current():
    documented = fidelity.section(fidelity.DOC.read_text())
    assert documented == fidelity.matrix(), "run `python -m lsrl.guarantee.fidelity --write` and commit"
    header = documented.splitlines()[0]
    assert all(f"`{b}`" in header for b in BACKENDS)  # every registered backend has its column
