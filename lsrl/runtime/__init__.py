"""Runtime: kernels and execution helpers for compiled models."""

from lsrl.runtime.scan import ScanBackendUnavailable, linear_scan, selective_scan

__all__ = ["ScanBackendUnavailable", "linear_scan", "selective_scan"]
