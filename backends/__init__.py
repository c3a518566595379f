"""Backends: one module per target architecture, all emitting from the same lowered stack."""

from __future__ import annotations

from lsrl.backends import gru, hawk, lrnn, lstm, mamba, rnn
from lsrl.backends.base import Backend, Emitted, Placement, Target

from lsrl.diagnostics import error

BACKENDS: dict[str, Backend] = {b.name: b for b in (lrnn.BACKEND, rnn.BACKEND, gru.BACKEND, lstm.BACKEND,
                                                   mamba.BACKEND, hawk.BACKEND)}


def get_backend(name: str) -> Backend:
    if name not in BACKENDS:
        raise error("E0700", f"unknown backend `{name}`", None, f"available: {', '.join(sorted(BACKENDS))}")
    return BACKENDS[name]


__all__ = ["BACKENDS", "Backend", "Emitted", "Placement", "Target", "get_backend"]
