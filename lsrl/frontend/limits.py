"""Compile-time limits, checked before anything large is built (configurable through the environment).

MAX_ELEMENTS (LSRL_MAX_ELEMENTS, default 2,000,000): the compile-time work of one program, counted as the
    elements its loops and comprehensions produce and the entries of the constant arrays builtins make
    (`eye(n)` counts n^2); past it, E0227 points at the construct that crossed it.
MAX_DIM (LSRL_MAX_DIM, default 4,096): the largest dimension of a per-step value (an input, a state, any
    value the program computes); past it, E0228. The compiler's exact weight algebra builds dense dim x dim
    matrices (a 60,000-wide value would need a 27 GiB identity), so this also bounds every layer's width.
"""

from __future__ import annotations

import os

MAX_ELEMENTS = int(os.environ.get("LSRL_MAX_ELEMENTS", 2_000_000))
MAX_DIM = int(os.environ.get("LSRL_MAX_DIM", 1 << 12))
