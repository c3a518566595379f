"""Tuning limits of the range analysis (sizes of sets, enumerations and simulations), and its debug switch."""

from __future__ import annotations

import os

DEFAULT_MAX_LEN = 4096

SET_LIMIT = 4096  # explicit value sets up to this many values
SMALL_SET = 16  # lattices with at most this many points are kept as explicit sets
SUMSET_LIMIT = 1 << 16  # transfer functions build explicit sums/products up to this many pairs
EAGER_SUMSET = 64  # ... a sum to be refined by enumeration first: the full sumset only if that fails
ENUM_MAX = 64  # a support member with at most this many values is enumerated (else symbolic)
VECTOR_WORK = 1 << 22  # values x cone wires a single-member support may be evaluated at, all values at once
ORBIT_ENUM_MAX = 512  # an orbit with at most this many points is enumerated jointly
ROW_LIMIT = 2048  # rows (points of the enumerated support members) of one enumeration
PIECE_LIMIT = 2048  # rows after piecewise-affine splitting, per enumeration
PLAN_LIMIT = 400_000  # rows x cone wires an enumeration may plan (tok2tok T=128: 1280 rows x 265 wires)
WORK_LIMIT = 30_000  # wire evaluations past which an enumeration stops splitting rows at kinks
VALUES_LIMIT = 256  # NodeRange.values lists value sets up to this size (Ranges.values: up to SET_LIMIT)
MAX_DEPTH = 12  # nested splits of one row
MAX_DIRS = 6  # oblique cut directions per row
SPLIT_FANOUT = 8  # cut points used per split (the rest are cut in the pieces)
QUIET_ORBIT_MAX = 16  # a drive read off an orbit of at most this many points is checked for falling quiet
MAX_SUPPORT = 1024  # members of a support
MAX_EXPANSIONS = 4000
ORBIT_LIMIT = 4096  # distinct orbit points (clusters) kept per autonomous state block
SIM_LIMIT = 1 << 16  # steps simulated for an orbit; longer max_len falls back to iteration
EXACT_BITS = 256  # exact orbit simulation gives up beyond this many bits per entry
BALL_REL = 1e-6  # an enumerated result this narrow (relative) is kept as a ball, not an interval

_DEBUG = bool(os.environ.get("LSRL_RANGES_DEBUG"))  # read as limits._DEBUG, so that tests can patch it
