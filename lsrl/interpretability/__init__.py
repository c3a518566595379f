"""Tools for interpretability benchmarks built from compiled models (docs/interpretability.md).

Importing the package loads no torch (its modules import it where they run a model): the frontend checks a
program's `generator` declaration against lsrl.interpretability.generators, and `lsrl check` must stay fast."""

from lsrl.interpretability.dataset import build_dataset
from lsrl.interpretability.intervene import Intervention, intervene, node_of, patched
from lsrl.interpretability.trace import Trace, UnitLabel, trace

__all__ = ["Intervention", "build_dataset", "Trace", "UnitLabel", "intervene", "node_of", "patched", "trace"]
