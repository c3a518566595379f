"""lsrl: compile Linear State Recurrent Language programs to recurrent-network weights."""

from lsrl.diagnostics import LsrlError
from lsrl.frontend.elaborate import compile_source, load_program
from lsrl.ir.graph import Graph
from lsrl.ir.interpreter import Interpreter, RunResult, interpret
from lsrl.program import Domain, InputSpec, Program

__version__ = "0.1.0"

_LAZY = {"load": "lsrl.runtime.checkpoint", "load_manifest": "lsrl.runtime.checkpoint",
         "save_checkpoint": "lsrl.runtime.checkpoint"}


def __getattr__(name: str):
    """Checkpoint functions import torch: loaded on first use, so parsing and interpreting never do."""
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'lsrl' has no attribute {name!r}")

__all__ = [
    "Domain", "Graph", "InputSpec", "Interpreter", "LsrlError", "Program", "RunResult", "compile_source",
    "interpret", "load", "load_manifest", "load_program", "save_checkpoint", "__version__",
]
