"""Backends: one module per target architecture."""
