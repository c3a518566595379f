"""Shipped programs compiled for tests."""

from __future__ import annotations

from pathlib import Path

from lsrl import load_program
from lsrl.compiling import CompileOptions, compile_program

ROOT = Path(__file__).parent.parent


def compiled(backend: str, name: str, max_len: int = 64, **options):
    """(program, compiled) for programs/<name>.lsrl."""
    prog = load_program(str(ROOT / f"programs/{name}.lsrl"))
    return prog, compile_program(prog, CompileOptions(backend, max_len=max_len, **options))
