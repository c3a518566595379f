"""Input generators: well-formed input sequences for a program, chosen by name (docs/interpretability.md).

A generator is a function ``(rng, n, length, **args) -> float64 array (n, length, input_dim)``. All its
randomness comes from ``rng`` (a numpy Generator), so a seed fixes its output; ``args`` are the compile-time
arguments of the program's ``generator NAME(ARG = VALUE, ...)`` declaration (or of ``lsrl dataset
--generator-arg``), passed as plain Python: ints for integral values, floats otherwise, lists for vectors. A
generator with a keyword parameter ``input`` also receives the program's InputSpec (the ``domain`` generator
does). Generators registered in GENERATORS (``@register("name")``) are named by their key; any other
function as ``"module:function"`` (``"pkg.mod:fn"``), imported when used.

    domain    uniform tokens from the input domain (what `lsrl dataset` draws when a program names none)
    tok2tok   programs/tok2tok.lsrl: a query, then key/value pairs with distinct keys; the query is one of
              the keys with probability p_match
    vec2vec   programs/vec2vec.lsrl: a query, then the N^D grid cells with a random smooth function's values
    dyck1     programs/dyck1.lsrl: balanced bracket strings, and near-balanced ones (one bracket flipped, or
              a top-level pair swapped)

A generator reports a bad argument by raising GeneratorArgError(arg, message), and inputs it cannot make for
the program's input by raising GeneratorInputError(message); `check` (used by the frontend on a
declaration) and `Choice.draw` (used by datasets) turn them into diagnostics, located at the declaration
when there is one: E0411 unknown generator, E0412 bad arguments, E0414 the generator does not fit the
program's input, E1005 a generator's output is not a valid input (shape, non-finite values, values outside
the input domain).

This module imports numpy and the lightweight parts of lsrl only: the frontend loads it to check
declarations without importing torch (lsrl.frontend.elaborate._generators).
"""

from __future__ import annotations

import difflib
import importlib
import inspect
import itertools
import math
import numbers
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from lsrl.diagnostics import Note, Span, error
from lsrl.program import GeneratorSpec, InputSpec, python_value

GENERATORS: dict[str, Callable[..., np.ndarray]] = {}


class GeneratorArgError(ValueError):
    """A generator argument the generator cannot use (E0412, located at the argument when declared)."""

    def __init__(self, arg: str | None, message: str):
        super().__init__(message)
        self.arg = arg


class GeneratorInputError(ValueError):
    """The generator cannot make inputs for the program's input (E0414)."""


def register(name: str):
    """Decorator: add a generator function to GENERATORS under `name` (a plain LSRL name)."""

    def add(fn):
        GENERATORS[name] = fn
        return fn

    return add


# ---------------------------------------------------------------- resolving, checking, drawing


def resolve(name: str, span: Span | None = None) -> Callable[..., np.ndarray]:
    """The generator function called `name`: a key of GENERATORS, or "module:function" (imported now).
    E0411 if there is none."""
    if ":" not in name:
        if name in GENERATORS:
            return GENERATORS[name]
        near = difflib.get_close_matches(name, sorted(GENERATORS), n=1, cutoff=0.6)
        known = ", ".join(sorted(GENERATORS))
        hint = (f"did you mean `{near[0]}`? " if near else "") + f"registered generators: {known}"
        if "." in name:
            hint = "a generator of your own is named `module:function`, e.g. `my_gens:prompts`"
        raise error("E0411", f"unknown generator `{name}`", span, hint)
    module_name, _, attr = name.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise error("E0411", f"generator `{name}`: cannot import module `{module_name}` ({exc})", span,
                    "the module must be importable (installed, or on PYTHONPATH)") from None
    fn = getattr(module, attr, None)
    if not callable(fn):
        raise error("E0411", f"generator `{name}`: module `{module_name}` has no function `{attr}`", span,
                    "a generator is a function (rng, n, length, **args) -> array (n, length, input_dim)")
    return fn


def _takes_input(fn) -> bool:
    try:
        p = inspect.signature(fn).parameters.get("input")
    except (TypeError, ValueError):
        return False
    return p is not None and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)


def check_args(fn, name: str, args: dict, span: Span | None = None, arg_spans: dict | None = None) -> None:
    """E0412 unless `fn(rng, n, length, **args)` (plus `input=`, if it takes one) matches its signature."""
    arg_spans = arg_spans or {}
    try:
        sig = inspect.signature(fn)
    except (TypeError, ValueError):
        return  # a builtin or C function: nothing to check before calling it
    params = list(sig.parameters.values())
    positional = [p for p in params if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    if len(positional) < 3 and not any(p.kind == p.VAR_POSITIONAL for p in params):
        raise error("E0411", f"`{name}` is not a generator: it does not take (rng, n, length)", span,
                    "a generator is a function (rng, n, length, **args) -> array (n, length, input_dim)")
    named = {p.name: p for p in params[3:] if p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)}
    named.pop("input", None)
    open_ended = any(p.kind == p.VAR_KEYWORD for p in params)
    shown = ", ".join(f"{p.name}" + ("" if p.default is p.empty else f"={p.default}") for p in named.values())
    for k in args:
        if k == "input":
            raise error("E0412", "`input` is not a generator argument: the generator receives the program's "
                        "input spec itself", arg_spans.get(k, span), "remove it")
        if k not in named and not open_ended:
            near = difflib.get_close_matches(k, list(named), n=1, cutoff=0.6)
            raise error("E0412", f"generator `{name}` has no argument `{k}`", arg_spans.get(k, span),
                        (f"did you mean `{near[0]}`? " if near else "") + f"its arguments: {shown or 'none'}")
    missing = [p.name for p in named.values() if p.default is p.empty and p.name not in args]
    if missing:
        raise error("E0412", f"generator `{name}` is missing argument `{missing[0]}`", span,
                    f"its arguments: {shown}")


def _call(fn, name: str, rng, n: int, length: int, args: dict, input: InputSpec | None,
          span: Span | None, arg_spans: dict) -> np.ndarray:
    """Call a generator; its argument and input errors become E0412 / E0414 (located when declared)."""
    kwargs = dict(args)
    if _takes_input(fn):
        kwargs["input"] = input
    try:
        return fn(rng, n, length, **kwargs)
    except GeneratorArgError as exc:
        where = arg_spans.get(exc.arg, span)
        raise error("E0412", f"generator `{name}`: {exc}", where) from None
    except GeneratorInputError as exc:
        what = f" `{input.name}[{input.dim}]`" if input is not None else ""
        raise error("E0414", f"generator `{name}` cannot make the program's input{what}: {exc}", span) from None


def check(spec: GeneratorSpec, input: InputSpec) -> None:
    """Check a program's `generator` declaration (the frontend calls this once the program is elaborated):
    the name (E0411), the arguments (E0412) and that its tokens have the input's dim (E0414). A
    "module:function" generator is imported only when used, so only its name's form is checked here."""
    if ":" in spec.name:
        module_name, _, attr = spec.name.partition(":")
        if not module_name or not attr:
            raise error("E0411", f"`{spec.name}` is not a generator name", spec.name_span or spec.span,
                        "name a registered generator, or one of your own as `module:function`")
        return
    fn = resolve(spec.name, spec.name_span or spec.span)
    args = spec.python_args()
    check_args(fn, spec.name, args, spec.span, spec.arg_spans)
    x = _call(fn, spec.name, np.random.default_rng(0), 0, 1, args, input, spec.span, spec.arg_spans)
    dim = np.shape(x)[-1] if np.ndim(x) == 3 else None
    if dim != input.dim:
        made = f"tokens of dim {dim}" if dim is not None else f"an array of shape {np.shape(x)}"
        raise error("E0414", f"generator `{spec.name}` makes {made}, but the program's input "
                    f"`{input.name}` has dim {input.dim}", spec.span,
                    "a generator makes tokens of one layout: check the arguments that size them, or name "
                    "another generator",
                    (Note(f"`{input.name}` is declared here", input.span),) if input.span else ())


def check_inputs(x, name: str, input: InputSpec, n: int, length: int, span: Span | None = None) -> np.ndarray:
    """x as float64, E1005 unless it is a valid input batch: shape (n, length, input dim), finite, in the
    input's domain."""
    try:
        arr = np.asarray(x, dtype=np.float64)
    except (TypeError, ValueError):
        raise error("E1005", f"generator `{name}` returned {type(x).__name__}, not an array of numbers", span,
                    "a generator returns a float64 array (n, length, input_dim)") from None
    want = (n, length, input.dim)
    if arr.shape != want:
        raise error("E1005", f"generator `{name}` returned an array of shape {arr.shape}, expected {want} "
                    "(sequences, length, input dim)", span)
    if not np.isfinite(arr).all():
        raise error("E1005", f"generator `{name}` returned non-finite values (nan or inf)", span)
    dom = input.domain
    if dom is not None:
        if dom.kind == "interval":
            lo, hi = (float(v) for v in dom.values)
            bad = (arr < lo) | (arr > hi)
        else:
            bad = ~np.isin(arr, np.array([float(v) for v in dom.values]))
        if bad.any():
            i, t, k = (int(v) for v in np.argwhere(bad)[0])
            raise error("E1005", f"generator `{name}` made a value outside the input domain {dom}: "
                        f"{arr[i, t, k]!r} (sequence {i}, step {t}, component {k})", span,
                        "a generator must draw inputs the program is compiled for")
    return arr


@dataclass(frozen=True)
class Choice:
    """The generator a dataset draws with: its name, function, arguments (plain Python) and where the choice
    came from ("program": the program's declaration, "option": given explicitly, "default": `domain`)."""

    name: str
    fn: Callable[..., np.ndarray]
    args: dict[str, object] = field(default_factory=dict)
    source: str = "default"
    span: Span | None = None
    arg_spans: dict[str, Span] = field(default_factory=dict)

    def draw(self, rng: np.random.Generator, n: int, length: int, input: InputSpec) -> np.ndarray:
        """n inputs of `length` tokens (float64), checked to be valid inputs (E1005)."""
        x = _call(self.fn, self.name, rng, n, length, self.args, input, self.span, self.arg_spans)
        return check_inputs(x, self.name, input, n, length, self.span)

    def to_json(self) -> dict:
        return {"name": self.name, "args": {k: python_value(v) for k, v in self.args.items()}, "from": self.source}


def choose(declared: GeneratorSpec | None, generator=None, args: dict | None = None) -> Choice:
    """The generator to draw with: `generator` (a name, "module:function" or a function) if given, else the
    program's declaration, else `domain`. `args` override (or add to) the declared arguments when the
    generator is the declared one, and are the arguments otherwise. E0411 / E0412 for a bad choice."""
    extra = {k: python_value(v) for k, v in (args or {}).items()}
    # errors about an argument given here are not located at the declaration, whose value it replaces
    spans = {**declared.arg_spans, **{k: None for k in extra}} if declared is not None else {}
    if generator is None and declared is not None:
        fn = resolve(declared.name, declared.name_span or declared.span)
        merged = {**declared.python_args(), **extra}
        check_args(fn, declared.name, merged, declared.span, spans)
        return Choice(declared.name, fn, merged, "program", declared.span, spans)
    if generator is None:
        name, source = "domain", "default"
    else:
        name, source = generator, "option"
    if callable(name):
        fn, name = name, f"{name.__module__}:{name.__qualname__}"
    else:
        fn = resolve(str(name))
    same = declared is not None and declared.name == name
    merged = {**(declared.python_args() if same else {}), **extra}
    span, spans = (declared.span, spans) if same else (None, {})
    check_args(fn, name, merged, span, spans)
    return Choice(name, fn, merged, source, span, spans)


# ---------------------------------------------------------------- argument checks


def _number(v) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, (bool, np.bool_)) and math.isfinite(v)


def _int(name: str, v, minimum: int) -> int:
    if not (_number(v) and v == int(v) and v >= minimum):
        raise GeneratorArgError(name, f"`{name}` must be an integer >= {minimum}, got {v!r}")
    return int(v)


def _real(name: str, v, lo: float | None = None, hi: float | None = None, strict: bool = False) -> float:
    ok = _number(v)
    if ok and lo is not None:
        ok = v > lo if strict else v >= lo
    if ok and hi is not None:
        ok = v <= hi
    if not ok:
        where = ("" if lo is None else f" in [{lo:g}, {hi:g}]" if hi is not None
                 else f" {'>' if strict else '>='} {lo:g}")
        raise GeneratorArgError(name, f"`{name}` must be a number{where}, got {v!r}")
    return float(v)


# ---------------------------------------------------------------- domain


@register("domain")
def domain(rng: np.random.Generator, n: int, length: int, *, input: InputSpec) -> np.ndarray:
    """Tokens drawn uniformly from the input domain, every component independently (InputSpec.sample)."""
    if input is None or input.domain is None:
        raise GeneratorInputError("it has no domain to draw from (declare one, e.g. `in {0..9}`)")
    return input.sample(rng, n, length)


# ---------------------------------------------------------------- tok2tok


def distinct_keys(rng: np.random.Generator, count: int, T: int, V: int) -> np.ndarray:
    """`count` distinct keys of T tokens in 0..V-1, an int array (count, T), drawn uniformly."""
    space = V ** T
    if space < count:
        raise GeneratorArgError("V", f"{count} distinct keys are needed, but there are only V**T = {V}**{T} = "
                                f"{space} keys (raise V or T, or draw shorter sequences)")
    if space <= 2 ** 62:
        idx = rng.choice(space, size=count, replace=False).astype(np.int64)
        powers = np.array([V ** k for k in range(T - 1, -1, -1)], dtype=np.int64)
        return (idx[:, None] // powers) % V
    keys: dict[tuple[int, ...], None] = {}  # an astronomically large key space: redraw the rare repeats
    while len(keys) < count:
        keys.setdefault(tuple(int(v) for v in rng.integers(0, V, T)), None)
    return np.array(list(keys), dtype=np.int64).reshape(count, T)


def tok2tok_prompt(query, keys, values) -> np.ndarray:
    """The tokens of a tok2tok prompt: the query, then key_1 ++ value_1, key_2 ++ value_2, ... (1-d)."""
    parts = [np.asarray(query).reshape(-1)]
    for k, v in zip(keys, values, strict=True):
        parts += [np.asarray(k).reshape(-1), np.asarray(v).reshape(-1)]
    return np.concatenate(parts)


def tok2tok_layout(T: int, length: int) -> tuple[int, int]:
    """(complete pairs, tokens of a truncated last pair) in a prompt of `length` tokens with keys of T."""
    body = max(0, length - T)
    return body // (2 * T), body % (2 * T)


@register("tok2tok")
def tok2tok(rng: np.random.Generator, n: int, length: int, T: int, V: int = 10, p_match: float = 1) -> np.ndarray:
    """Prompts for programs/tok2tok.lsrl: a query of T tokens, then (key ++ value) pairs of T tokens each in
    0..V-1 with distinct keys. With probability p_match the query is one of the complete pairs' keys (chosen
    uniformly), otherwise a key that is not in the prompt. When `length` leaves room for a partial pair at
    the end, its key (if complete) is distinct from every other key and from the query, so the answer is
    decided by the complete pairs: the outputs from the matching value's first token on, at steps t = i
    (mod T), are value[i]; 0 everywhere when no key matches."""
    T, V, p = _int("T", T, 1), _int("V", V, 1), _real("p_match", p_match, 0, 1)
    out = np.zeros((n, length, 1))
    m, tail = tok2tok_layout(T, length)
    tail_key = tail >= T
    for row in range(n):
        match = m > 0 and rng.random() < p
        keys = distinct_keys(rng, m + tail_key + (not match), T, V)
        values = rng.integers(0, V, (m + 1, T))
        query = keys[int(rng.integers(m))] if match else keys[-1]
        seq = tok2tok_prompt(query, keys[:m], values[:m])
        last = np.concatenate([keys[m], values[m]]) if tail_key else rng.integers(0, V, 2 * T)
        seq = np.concatenate([seq, last[:tail]])
        out[row, :, 0] = seq[:length]
    return out


# ---------------------------------------------------------------- vec2vec


def grid_cells(D: int, N: int, count: int) -> np.ndarray:
    """The first `count` cells of the N^D grid, in itertools.product order (last coordinate fastest), as
    integer indices (count, D)."""
    if count <= 0:
        return np.zeros((0, D), dtype=np.int64)
    return np.array(list(itertools.islice(itertools.product(range(N), repeat=D), count)), dtype=np.int64)


def vec2vec_instance(rng: np.random.Generator, D: int, E: int, N: int, eps: float, amplitude: float, terms: int):
    """One vec2vec task: a query q uniform in [0, 1)^D at least 2 eps below every cell boundary (the program's
    cell test is fractional within eps of it; where 2 eps leaves no room, halfway between eps and 1/N), and a
    random smooth f: [0, 1)^D -> R^E with |f| <= amplitude, f_e(z) = sum_k a_ek cos(2 pi w_k . z + phi_k) over
    `terms` integer frequencies w_k in -2..2 and sum_k |a_ek| = amplitude. Returns (q, f) with f taking points
    (m, D) to values (m, E)."""
    bounds = np.arange(1, N + 1) / N
    margin = min(2 * eps, (eps + 1 / N) / 2)  # 2 eps, or halfway to the cell's lower edge in cells that narrow

    def near(q):
        return np.any((q[:, None] > bounds - margin) & (q[:, None] < bounds), axis=1)

    q = rng.random(D)
    bad = near(q)
    while bad.any():
        q[bad] = rng.random(int(bad.sum()))
        bad = near(q)
    freqs = rng.integers(-2, 3, (terms, D))
    phases = rng.uniform(0, 2 * np.pi, terms)
    weights = rng.standard_normal((E, terms))
    weights *= amplitude / np.maximum(np.abs(weights).sum(axis=1, keepdims=True), 1e-300)
    return q, lambda z: np.cos(2 * np.pi * z @ freqs.T + phases) @ weights.T


@register("vec2vec")
def vec2vec(rng: np.random.Generator, n: int, length: int, D: int, E: int, N: int, eps: float = 1e-6,
            amplitude: float = 1, terms: int = 4) -> np.ndarray:
    """Prompts for programs/vec2vec.lsrl (tokens of 1 + D + E components): step 0 the query
    [q_1 .. q_D, 0 .. 0] of a `vec2vec_instance`; steps 1 .. N^D one token [1/N, i_1/N .. i_D/N, f_1 .. f_E]
    per cell, in itertools.product order, f evaluated at the cell centre; later steps (which the program
    ignores) zero."""
    D, E, N = _int("D", D, 1), _int("E", E, 1), _int("N", N, 1)
    eps, amp, K = _real("eps", eps, 0, strict=True), _real("amplitude", amplitude, 0), _int("terms", terms, 1)
    return vec2vec_prompts(rng, n, length, D, E, N, eps, amp, K)[0]


def vec2vec_prompts(rng: np.random.Generator, n: int, length: int, D: int, E: int, N: int, eps: float,
                    amplitude: float = 1, terms: int = 4) -> tuple[np.ndarray, np.ndarray]:
    """The `vec2vec` generator's prompts, and f at each one's query (n, E): what the model approximates."""
    if eps >= 1 / N:  # no query qualifies: vec2vec_instance's sampling would never end
        raise GeneratorArgError("eps", f"`eps` must be below the cell width 1/N = {1 / N:g} (queries keep more "
                                f"than eps below every cell boundary), got {eps:g}")
    out, target = np.zeros((n, length, 1 + D + E)), np.zeros((n, E))
    if n == 0 or length == 0:
        return out, target
    cells = grid_cells(D, N, min(N ** D, length - 1))
    for row in range(n):
        q, f = vec2vec_instance(rng, D, E, N, eps, amplitude, terms)
        out[row, 0, :D] = q
        target[row] = f(q[None])[0]
        if len(cells):
            out[row, 1:1 + len(cells)] = np.column_stack([np.full(len(cells), 1 / N), cells / N,
                                                          f((cells + 0.5) / N)])
    return out, target


# ---------------------------------------------------------------- dyck1


def balanced_brackets(rng: np.random.Generator, pairs: int) -> np.ndarray:
    """A uniformly random balanced string of `pairs` bracket pairs, as steps +1 '(' and -1 ')' (the cycle
    lemma: the one rotation of a shuffled walk of pairs +1s and pairs + 1 -1s that stays >= 0 until its last
    step, which is dropped)."""
    walk = rng.permutation(np.array([1] * pairs + [-1] * (pairs + 1)))
    start = int(np.argmin(np.cumsum(walk))) + 1  # just after the first minimum
    return np.roll(walk, -start)[:-1]


@register("dyck1")
def dyck1(rng: np.random.Generator, n: int, length: int, p_balanced: float = 0.5) -> np.ndarray:
    """Bracket strings for programs/dyck1.lsrl (0 is '(', 1 is ')'). With probability p_balanced a uniformly
    random balanced string; otherwise a near-balanced one: a balanced string with one bracket flipped (it
    ends at depth +-2), or, with equal probability, with a top-level pair swapped to ')...(' (it ends at
    depth 0 but goes negative). An odd `length` ends with one random bracket after the balanced part."""
    p = _real("p_balanced", p_balanced, 0, 1)
    out = np.zeros((n, length, 1))
    pairs = length // 2
    for row in range(n):
        walk = balanced_brackets(rng, pairs)
        if pairs and rng.random() >= p:
            if rng.random() < 0.5:
                i = int(rng.integers(len(walk)))
                walk[i] = -walk[i]
            else:
                depth = np.concatenate([[0], np.cumsum(walk)])
                opens = np.flatnonzero((depth[:-1] == 0) & (walk == 1))  # top-level '(' (depth 0 before)
                i = int(opens[rng.integers(len(opens))])
                j = i + 1 + int(np.flatnonzero(depth[i + 2:] == 0)[0])  # its matching ')'
                walk[i], walk[j] = walk[j], walk[i]
        tokens = (1 - walk) // 2
        if length % 2:
            tokens = np.concatenate([tokens, rng.integers(0, 2, 1)])
        out[row, :, 0] = tokens
    return out
