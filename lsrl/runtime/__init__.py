"""Runtime: kernels and execution helpers for compiled models."""
