"""Grammar of the .lsrl language, shipped as package data."""
