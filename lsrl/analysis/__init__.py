"""Static analyses of IR graphs (range analysis: `lsrl.analysis.ranges`)."""

from lsrl.analysis.ranges import DEFAULT_MAX_LEN, NodeRange, Ranges, analyze

__all__ = ["DEFAULT_MAX_LEN", "NodeRange", "Ranges", "analyze"]
