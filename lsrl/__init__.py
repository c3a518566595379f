"""lsrl: compile Linear State Recurrent Language programs to recurrent-network weights (docs/api.md)."""

from __future__ import annotations

import os

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


def _program(program: Program | str | os.PathLike, params: dict | None) -> Program:
    """A Program as it is, a path to a .lsrl file, or source text."""
    if isinstance(program, Program):
        if params:
            raise TypeError("params apply to a path or source text; this Program is already elaborated")
        return program
    text = os.fspath(program)
    if text.endswith(".lsrl") and "\n" not in text:
        return load_program(text, params)
    return compile_source(text, "<source>", params)


def compile(program: Program | str | os.PathLike, backend: str = "lrnn", *, max_len: int | None = None,  # noqa: A001
            dtype: str = "float64", optimize: bool = True, params: dict | None = None):
    """Compile a program (a Program, a path to a .lsrl file, or source text) for `backend`: a
    `lsrl.compiling.Compiled` with the torch module (`.module`), its promise (`.promise()`) and what the
    manifest and checkpoint need (`lsrl.save_checkpoint(compiled, dir)`). `max_len`: the longest sequence
    the constants and the promise are made for (None: 4096); `params` override `param` declarations.
    Program errors raise `lsrl.LsrlError` with located diagnostics."""
    from lsrl.compiling import CompileOptions, compile_program

    return compile_program(_program(program, params), CompileOptions(backend, max_len, dtype, optimize))


def verify(program: Program | str | os.PathLike, backend: str = "lrnn", *, max_len: int | None = None,
           dtype: str = "float64", optimize: bool = True, params: dict | None = None, checkpoint=None,
           samples: int = 256, length: int = 256, seed: int = 0):
    """Compile the program (or load `checkpoint`, a directory compiled from it) and check the model against
    the interpreter on `samples` random sequences of `length` plus edge cases: a
    `lsrl.verifying.VerifyReport` whose `.passed` says whether every output kept its promise."""
    from lsrl.compiling import CompileOptions
    from lsrl.verifying import verify as run
    from lsrl.verifying import verify_checkpoint

    prog = _program(program, params)
    if checkpoint is not None:
        return verify_checkpoint(prog, checkpoint, samples, length, seed)
    return run(prog, CompileOptions(backend, max_len, dtype, optimize), samples, length, seed)


__all__ = [
    "Domain", "Graph", "InputSpec", "Interpreter", "LsrlError", "Program", "RunResult", "compile",
    "compile_source", "interpret", "load", "load_manifest", "load_program", "save_checkpoint", "verify",
    "__version__",
]
