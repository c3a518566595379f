"""Tools for interpretability benchmarks built from compiled models (docs/interpretability.md)."""

from lsrl.interpretability.trace import Trace, UnitLabel, trace

__all__ = ["Trace", "UnitLabel", "trace"]
