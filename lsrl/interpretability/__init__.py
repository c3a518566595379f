"""Tools for interpretability benchmarks built from compiled models (docs/interpretability.md)."""

from lsrl.interpretability.intervene import Intervention, intervene, node_of, patched
from lsrl.interpretability.trace import Trace, UnitLabel, trace

__all__ = ["Intervention", "Trace", "UnitLabel", "intervene", "node_of", "patched", "trace"]
