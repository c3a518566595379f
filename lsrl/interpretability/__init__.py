"""Tools for interpretability benchmarks built from compiled models (docs/interpretability.md)."""

from lsrl.interpretability.dataset import build_dataset
from lsrl.interpretability.intervene import Intervention, intervene, node_of, patched
from lsrl.interpretability.trace import Trace, UnitLabel, trace

__all__ = ["Intervention", "build_dataset", "Trace", "UnitLabel", "intervene", "node_of", "patched", "trace"]
