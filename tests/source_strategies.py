"""Hypothesis strategies for LSRL *source text* over the constructs of docs/language.md: params, inputs with
finite and interval domains, linear maps with small rationals, relu and the prelude, states with identity,
decay, shift, rotation, permutation and coupled transitions, products, concat / slice / index, functions,
compile-time loops, comprehensions and ternaries, probes, nesting. Every program is well formed; what a
backend cannot realise it must refuse with a located diagnostic."""

from __future__ import annotations

from fractions import Fraction

from hypothesis import strategies as st

SMALL = [Fraction(1), Fraction(-1), Fraction(2), Fraction(1, 2), Fraction(-3, 4), Fraction(3)]
DOMAINS = ["{0, 1}", "{0..3}", "{-1, 0, 1}", "[-1, 1]", "[0, 2]"]
TRANSITIONS = ["eye({k})", "diag([1/2 for i in range({k})])", "shift_matrix({k})", "zeros({k}, {k})",
               "[[1 if j == (i + 1) % {k} else 0 for j in range({k})] for i in range({k})]",  # cyclic permutation
               "[[1 if j >= i else 0 for j in range({k})] for i in range({k})] / {k}",  # coupled, upper triangular
               "rotation(2 * pi / 4)", "[[1, 1], [0, 0]]"]  # the last two need k = 2


def _num(q: Fraction) -> str:
    return str(q.numerator) if q.denominator == 1 else f"({q.numerator} / {q.denominator})"


@st.composite
def sources(draw, max_lets: int = 7) -> str:
    """One program's source text."""
    d = draw(st.integers(1, 2))
    lines = [f"param k = {draw(st.integers(1, 3))}", f"input x[{d}] in {draw(st.sampled_from(DOMAINS))}",
             "def bump2(u, c) = relu(u - c) - relu(u - c - 1)",
             "def tail(v) {\n  let w = 2 * v\n  return w[len(w) - 1]\n}"]
    scalars = [f"x[{i}]" for i in range(d)]
    vectors = ["x"] if d > 1 else []
    probes = 0
    for i in range(draw(st.integers(1, max_lets))):
        name = f"v{i}"
        a, b = draw(st.sampled_from(scalars)), draw(st.sampled_from(scalars))
        q = _num(draw(st.sampled_from(SMALL)))
        kind = draw(st.sampled_from(["lin", "relu", "prelude", "product", "state", "vector", "loop", "func",
                                     "ternary", "nest"]))
        if kind == "lin":
            line, vec = f"let {name} = {q} * {a} + {b} - 1/3", False
        elif kind == "relu":
            line, vec = f"let {name} = relu({a} - {q})", False
        elif kind == "prelude":
            fn = draw(st.sampled_from(["larger({a}, {b}, 4)", "eq({a}, 1, 2)", "and(step({a}, 8), step({b}, 8))",
                                       "max({a}, {b})", "abs({a})", "ifelse(step({a}, 8), {b}, 0, 64)",
                                       "accumulate({a})", "delay({a}, 2)", "counter()", "mod_counter(3)",
                                       "cyclic_onehot(3)[1]"]))
            line, vec = f"let {name} = {fn.format(a=a, b=b)}", False
        elif kind == "product":
            line, vec = f"let {name} = {a} * {b}", False
        elif kind == "state":
            k = draw(st.integers(1, 3))
            A = draw(st.sampled_from(TRANSITIONS[:6] if k != 2 else TRANSITIONS))
            init = draw(st.sampled_from(["0", "1", "[1/2 for i in range({k})]"]))
            drive = draw(st.sampled_from(["repeat({a}, {k})", "cat(zeros({k} - 1), {a})" if k > 1 else "{a}", "0"]))
            lines.append(f"state {name}[{k}] = {init.format(k=k)}")
            lines.append(f"{name} <- {A.format(k=k)} @ {name} + {drive.format(a=a, k=k)}")
            vectors.append(name)
            scalars.append(f"{name}[{k - 1}]")
            continue
        elif kind == "vector":
            src = draw(st.sampled_from(vectors)) if vectors else None
            expr = f"cat({a}, {src}[0:1], {q} * {b})" if src else f"[{a}, {b}, {a} - {b}]"
            line, vec = f"let {name} = {expr}", True
        elif kind == "loop":
            line, vec = f"let {name} = sum([relu({a} - i / 2) for i in range(k + 1)])", False
        elif kind == "func":
            line, vec = f"let {name} = bump2({a}, 1) + tail(cat({a}, {b}))", False
        elif kind == "ternary":
            line, vec = f"let {name} = {a} if k > 1 else {q} * {b}", False
        else:
            line, vec = f"let {name} = relu(relu({a} - {b}) - relu({b} - 1/2) + {q})", False
        lines.append(line)
        if vec:
            vectors.append(name)
            scalars.append(f"{name}[1]")
        else:
            scalars.append(name)
        if draw(st.booleans()) and probes < 2:
            lines.append(f"probe p{probes} = {name}")
            probes += 1
    outs = draw(st.lists(st.sampled_from(scalars[d:] or scalars), min_size=1, max_size=2, unique=True))
    lines.append(f"output cat({', '.join(outs)})")
    return "\n".join(lines) + "\n"
