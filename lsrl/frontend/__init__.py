"""Frontend: parse and elaborate .lsrl source into the IR."""
