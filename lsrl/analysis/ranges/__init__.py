"""Range analysis: sound bounds (and value sets) for every IR value, from the input domain and a maximum length.

`analyze(graph, domain, max_len=DEFAULT_MAX_LEN)` returns `Ranges`: per node and component the interval
[lo, hi], whether the value is provably integer or provably in {0, 1}, and the exact value set when it is
finite and small. DEFAULT_MAX_LEN = 4096: sequences of at most this many steps (the step counter of
`counter()` then stays in [0, 4095]). Backends use it to pick the constants of ReLU realisations (the L of
b*v = relu(v - L(1-b)) - relu(-v - L(1-b))) as small as is provably safe; `require_bound` turns a missing
bound into a user error (E0601).

Semantics. Claims are about the graph evaluated in exact real arithmetic with its coefficients read as the
exact rationals they are (a float coefficient is a dyadic rational). Where a component is `float_derived`
(its computation involves a float coefficient), a float64 evaluation differs from that by rounding only.

Abstract domains (one per scalar component, "wire"): a finite set (optionally "balls": each member +- a
radius, for values known up to float rounding of a simulated orbit), an arithmetic lattice
{off + k*step} within [lo, hi], or an interval; all endpoints exact rationals
(gmpy2 `mpq` inside, `Fraction` in the results) or +-inf.

Rules (see docs/ranges.md): transfer functions per op; autonomous states by their orbit (exact simulation
with cycle detection, or a float simulation with a rigorous error bound, clustered into balls; step
counters s = init + t*b symbolically in the step number t); input-driven states by congruence and interval
iteration to a fixed point, intersected with a 2-norm bound; and "support expansion": a wire whose
operands are correlated (paths that converge, like relu(s*y + 1) - relu(s*y)) is re-evaluated exactly over
a cut of its cone whose members are independent, enumerating small sets (jointly for the components of one
orbit) and treating large ones symbolically with exact piecewise-affine splitting at ReLU kinks.
"""

from lsrl.analysis.ranges.analysis import analyze
from lsrl.analysis.ranges.limits import DEFAULT_MAX_LEN
from lsrl.analysis.ranges.results import NodeRange, Ranges
from lsrl.analysis.ranges.values import Val, v_join, v_lin, v_meet, v_mul, v_relu, v_sq

__all__ = ["DEFAULT_MAX_LEN", "NodeRange", "Ranges", "Val", "analyze", "v_join", "v_lin", "v_meet", "v_mul", "v_relu",
           "v_sq"]
