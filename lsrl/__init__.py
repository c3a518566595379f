"""lsrl: compile Linear State Recurrent Language programs to recurrent-network weights."""

from lsrl.diagnostics import LsrlError
from lsrl.frontend.elaborate import compile_source, load_program
from lsrl.ir.graph import Graph
from lsrl.ir.interpreter import Interpreter, RunResult, interpret
from lsrl.program import Domain, InputSpec, Program
from lsrl.runtime.checkpoint import load, load_manifest, save_checkpoint

__version__ = "0.1.0"

__all__ = [
    "Domain", "Graph", "InputSpec", "Interpreter", "LsrlError", "Program", "RunResult", "compile_source",
    "interpret", "load", "load_manifest", "load_program", "save_checkpoint", "__version__",
]
