"""Conformance of every backend (`sorted(BACKENDS)`, never a hand-written list) on small programs.

For each backend and program: the emitted module, the lowered stack (`run_stack`) and the IR interpreter
agree; a checkpoint round trip is bit-exact; every placement decodes, from the activations of its layer
(caught with forward hooks on each stage's layer: `{prefix}.{i}` or what the backend names), to the
interpreter's value of its node;
the hooks fire once per forward on every layer; the promise holds on inputs of length max_len in float32
and float64; verify refuses lengths beyond max_len; and what a backend cannot compile is refused with a
located diagnostic (LsrlError with a code and a span), never a Python exception.

Known bugs of code outside the tests go into KNOWN_BUGS, keyed by (backend, program, dtype), as
`xfail(strict=True)`: such a test fails again once the bug is fixed, which prompts removing the entry (none today).
"""

from __future__ import annotations

import functools
import re
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS, get_backend

from lsrl import compile_source, interpret, load, load_program, save_checkpoint
from lsrl.compiling import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.lowering import run_stack
from lsrl.verifying import sample_inputs, verify

ROOT = Path(__file__).parent.parent
NAMES = sorted(BACKENDS)
MAX_LEN = 64  # every compile here: the promise test runs sequences of exactly this length

SHIPPED = ["counter", "dyck1", "mod_counter", "more_ones", "parity", "window_sum"]

INLINE = {
    # a contracting vector state with a nonzero init, a real-valued ReLU, a 0/1 flag times a real value
    "mixed": """
input x[2] in [-1, 1]
state s[2] = [1, -1/2]
s <- [[1/2, 1/4], [-1/4, 1/2]] @ s + x
let late = larger(counter(), 4, 1)
let hi = relu(s[0] - s[1])
probe state = s
probe late = late
output [hi, late * s[1] + (1 - late) * x[0], abs(x[1])]
""",
    # tokens: a shift register, an exact cyclic one-hot state, comparisons and a flag times a token
    "tokens": """
input x[1] in {0..3}
let d = delay(x, 2)
let oh = cyclic_onehot(3)
let bigger = larger(x, d, 1)
probe oh = oh
output [range(3) @ oh, bigger * d, max(x, d)]
""",
}

PROGRAMS = SHIPPED + sorted(INLINE)

# programs with no stage at all (the output reads the input, or nothing): every backend should compile them
STAGELESS = {
    "constant": "input x[1] in {0, 1}\noutput [1, 2]\n",
    "identity": "input x[2] in [-1, 1]\nprobe first = x[0]\noutput 2 * x - 1\n",
}

# (backend, program, dtype) -> why it fails today (see the module docstring); dtype None: in every dtype
KNOWN_BUGS: dict[tuple[str, str, str | None], str] = {}


# (backend, program) -> the diagnostic its architecture refuses it with (not a bug: checked by
# test_architectural_refusals_are_located_diagnostics, left out of the cases that need a model)
# a decaying rotation with an input: no real diagonal [0, 1] recurrence
REFUSED = {(b, "mixed"): "E0706" for b in NAMES if BACKENDS[b].target.transitions == "diagonal01"}


def _case(backend: str, program: str, dtype: str | None = None):
    why = KNOWN_BUGS.get((backend, program, dtype)) or KNOWN_BUGS.get((backend, program, None))
    args = (backend, program) if dtype is None else (backend, program, dtype)
    return pytest.param(*args, marks=pytest.mark.xfail(reason=why, strict=True)) if why else args


def _cases(programs, dtypes=None):
    pairs = [(b, p) for b in NAMES for p in programs if (b, p) not in REFUSED]
    if dtypes is None:
        return [_case(b, p) for b, p in pairs]
    return [_case(b, p, d) for b, p in pairs for d in dtypes]


@functools.cache
def _program(name: str):
    if name in INLINE:
        return compile_source(INLINE[name], f"{name}.lsrl")
    if name in STAGELESS:
        return compile_source(STAGELESS[name], f"{name}.lsrl")
    return load_program(str(ROOT / "programs" / f"{name}.lsrl"))


@functools.cache
def _compiled(backend: str, name: str, dtype: str = "float64"):
    return compile_program(_program(name), CompileOptions(backend, max_len=MAX_LEN, dtype=dtype))


def _inputs(name: str, batch: int = 6, length: int = 40, seed: int = 0) -> np.ndarray:
    """Random sequences of the declared domain plus its edge cases (constant extremes, alternations)."""
    return sample_inputs(_program(name), batch, length, seed)


def _forward(module, x: np.ndarray, dtype=torch.float64):
    with torch.no_grad():
        y, probes = module(torch.tensor(x, dtype=dtype), probes=True)
    return y, probes


def _numpy(y, probes) -> dict[str, np.ndarray]:
    return {"output": y.double().numpy(), **{k: v.double().numpy() for k, v in probes.items()}}


def _reference(graph, x) -> dict[str, np.ndarray]:
    ref = interpret(graph, x)
    return {"output": ref.output, **ref.probes}


def _close(got: dict, want: dict, tol: float = 1e-9) -> None:
    assert got.keys() == want.keys()
    for k in want:
        scale = max(1.0, float(np.abs(want[k]).max(initial=0.0)))
        np.testing.assert_allclose(got[k], want[k], rtol=0, atol=tol * scale, err_msg=k)


def _layers(compiled) -> dict:
    """Per stage, the module whose output holds its values (`{prefix}.{i}`, or what the backend names)."""
    names = compiled.emitted.stage_layers(get_backend(compiled.options.backend).prefix, len(compiled.stack.stages))
    return {name: compiled.module.get_submodule(name) for name in names}


def _activations(compiled, x: np.ndarray) -> dict[str, np.ndarray]:
    """The output sequence of every stage's layer (a torch RNN/GRU/LSTM returns (output, h_n): its [0])."""
    acts: dict[str, np.ndarray] = {}

    def hook(i):
        def grab(module, args, out):
            acts[i] = (out[0] if isinstance(out, tuple) else out).double().numpy()
        return grab

    handles = [layer.register_forward_hook(hook(name)) for name, layer in _layers(compiled).items()]
    try:
        _forward(compiled.module, x)
    finally:
        for h in handles:
            h.remove()
    return acts


# ---------------------------------------------------------------- model, stack and interpreter agree


@pytest.mark.parametrize("backend, program", _cases(PROGRAMS))
def test_module_stack_and_interpreter_agree(backend, program):
    compiled = _compiled(backend, program)
    for x in (_inputs(program), _inputs(program, 2, 1)):  # and sequences of one step
        ys, probes = run_stack(compiled.stack, x)
        ref = _reference(compiled.graph, x)
        _close({"output": ys, **probes}, ref, 1e-12)  # the stack is the optimised graph's arithmetic, rounded
        _close(_reference(_program(program).graph, x), ref, 1e-12)  # optimisation keeps the meaning
        _close(_numpy(*_forward(compiled.module, x)), ref, 1e-9)


@pytest.mark.parametrize("backend, program", _cases(STAGELESS))
def test_programs_without_stages_compile(backend, program):
    compiled, x = _compiled(backend, program), _inputs(program)
    assert not compiled.stack.stages and not _layers(compiled)
    _close(_numpy(*_forward(compiled.module, x)), _reference(_program(program).graph, x), 1e-12)


# ---------------------------------------------------------------- checkpoints


@pytest.mark.parametrize("backend, program, dtype", _cases(["dyck1", "mixed", *STAGELESS], ["float64", "float32"]))
def test_checkpoint_round_trip_is_bit_exact(backend, program, dtype, tmp_path):
    compiled, x = _compiled(backend, program, dtype), _inputs(program)
    save_checkpoint(compiled, tmp_path / "ckpt")
    loaded = load(tmp_path / "ckpt")
    assert type(loaded) is type(compiled.module)
    want, got = compiled.module.state_dict(), loaded.state_dict()
    assert want.keys() == got.keys()
    for k in want:
        assert want[k].dtype == got[k].dtype and torch.equal(want[k], got[k]), k
    a, b = (_forward(m, x, getattr(torch, dtype)) for m in (compiled.module, loaded))
    assert torch.equal(a[0], b[0]) and a[1].keys() == b[1].keys()
    assert all(torch.equal(a[1][k], b[1][k]) for k in a[1])


# ---------------------------------------------------------------- placements and hooks


@pytest.mark.parametrize("backend, program", _cases(PROGRAMS))
def test_every_placement_decodes_to_the_interpreted_value(backend, program):
    compiled, x = _compiled(backend, program), _inputs(program)
    acts = _activations(compiled, x)
    trace = interpret(compiled.graph, x, trace=True).values
    places = compiled.emitted.placements
    assert places and {p.layer for p in places} <= set(acts)
    for p in places:
        units = acts[p.layer][..., p.start:p.stop]
        value = units @ p.decode.to_float().T + p.offset.to_float()
        want = trace[p.node]
        scale = max(1.0, float(np.abs(want).max(initial=0.0)))
        np.testing.assert_allclose(value, want, rtol=0, atol=1e-9 * scale,
                                   err_msg=f"node %{p.node} ({compiled.graph[p.node].label}) in {p.layer}")


@pytest.mark.parametrize("backend", NAMES)
def test_forward_hooks_fire_once_per_forward_on_every_layer(backend):
    compiled, x = _compiled(backend, "dyck1"), _inputs("dyck1", 2, 10)
    layers = _layers(compiled)
    assert len(layers) == len(compiled.stack.stages) > 1
    calls = [0] * len(layers)

    def count(i):
        def hook(module, args, out):
            calls[i] += 1
        return hook

    handles = [layer.register_forward_hook(count(i)) for i, layer in enumerate(layers.values())]
    try:
        with torch.no_grad():
            compiled.module(torch.tensor(x))
            assert calls == [1] * len(layers)
            compiled.module(torch.tensor(x), probes=True)
            assert calls == [2] * len(layers)
    finally:
        for h in handles:
            h.remove()


# ---------------------------------------------------------------- the promise and verify


@pytest.mark.parametrize("backend, program, dtype", _cases(PROGRAMS + sorted(STAGELESS), ["float64", "float32"]))
def test_promise_holds_at_max_len(backend, program, dtype):
    failed = get_backend(backend).check_platform(getattr(torch, dtype))
    if failed:
        pytest.skip(f"this platform breaks the promise's conditions: {failed}")
    compiled = _compiled(backend, program, dtype)
    promise = compiled.promise(dtype)
    assert promise.max_len == MAX_LEN and promise.dtype == dtype
    x = _inputs(program, 8, MAX_LEN, seed=1)
    got = _numpy(*_forward(compiled.module, x, getattr(torch, dtype)))
    ref = _reference(_program(program).reference_graph, x)
    assert got.keys() == promise.outputs.keys() == ref.keys()
    for k, p in promise.outputs.items():
        err = float(np.abs(got[k] - ref[k]).max())
        assert err <= p.allowed, f"{k}: |model - interpreter| = {err:.3g} > allowed {p.allowed:.3g} ({p.exactness})"


@pytest.mark.parametrize("backend", NAMES)
def test_verify_refuses_a_length_beyond_max_len(backend):
    program, options = _program("more_ones"), CompileOptions(backend, max_len=16)
    report = verify(program, options, samples=2, length=16)
    assert all(e <= report.promise.outputs[k].allowed for k, e in report.errors.items())
    with pytest.raises(LsrlError) as exc:
        verify(program, options, samples=2, length=17)
    assert exc.value.diagnostics[0].code == "E0703"


# ---------------------------------------------------------------- refusals are located diagnostics

# both an input without a bounded domain and a state accumulating it: bounds are needed by every backend
# whose constructions depend on range facts (a gate's constant L, a tanh unit's scale)
UNBOUNDED = """
input x[1]
state s = 0
s <- s + x
let late = larger(counter(), 3, 1)
output late * s
"""

# harder cases: each backend either compiles them (matching the interpreter) or refuses with a diagnostic
HARD = {
    "unbounded_accumulator": "input x[1]\nstate s = 0\ns <- s + x\noutput relu(s)\n",
    "unbounded_product": "input x[2]\noutput x[0] * x[1]\n",
    "bounded_product": "input x[1] in [-1, 1]\nstate s = 0\ns <- s + x\nlet sq = s * x\noutput sq\n",
    "growing_state": "input x[1] in [-1, 1]\nstate s = 0\ns <- 3 * s + x\noutput relu(s)\n",
    "growing_gate": "input x[1] in {0, 1}\nstate s = 0\ns <- 3 * s + x\noutput larger(s, 2, 1) * s\n",
}


@pytest.mark.parametrize(("backend", "program"), sorted(REFUSED))
def test_architectural_refusals_are_located_diagnostics(backend, program):
    with pytest.raises(LsrlError) as exc:
        compile_program(_program(program), CompileOptions(backend, max_len=MAX_LEN))
    assert exc.value.diagnostics[0].code == REFUSED[(backend, program)]
    _located(exc.value, f"{program}.lsrl")


def _located(exc: LsrlError, file: str) -> None:
    d = exc.diagnostics[0]
    assert re.fullmatch(r"E\d{4}", d.code), d
    assert d.span is not None and d.span.file == file and d.span.line >= 1 and d.span.col >= 1, d
    assert d.message and d.hint, d


@pytest.mark.parametrize("backend", NAMES)
def test_unbounded_values_are_refused_where_bounds_are_needed(backend):
    prog = compile_source(UNBOUNDED, "unbounded.lsrl")
    options = CompileOptions(backend, max_len=MAX_LEN)
    if not get_backend(backend).target.needs_facts:
        compiled = compile_program(prog, options)
        x = prog.input.sample(np.random.default_rng(0), 3, 20)
        _close(_numpy(*_forward(compiled.module, x)), _reference(prog.graph, x), 1e-12)
        return
    with pytest.raises(LsrlError) as exc:
        compile_program(prog, options)
    _located(exc.value, "unbounded.lsrl")
    assert exc.value.diagnostics[0].code == "E0601"


@pytest.mark.parametrize("max_len", [MAX_LEN, 4096])
@pytest.mark.parametrize("backend", NAMES)
@pytest.mark.parametrize("name", sorted(HARD))
def test_hard_programs_compile_or_are_refused_with_a_located_diagnostic(name, backend, max_len):
    file = f"{name}.lsrl"
    prog = compile_source(HARD[name], file)
    try:
        with warnings.catch_warnings():  # overflowing (useless) bounds of unbounded values may warn
            warnings.simplefilter("ignore", RuntimeWarning)
            compiled = compile_program(prog, CompileOptions(backend, max_len=max_len))
            promise = compiled.promise()
    except LsrlError as exc:
        _located(exc, file)
        return
    x = prog.input.sample(np.random.default_rng(0), 4, 24)  # short: values stay far from any overflow
    got, ref = _numpy(*_forward(compiled.module, x)), _reference(prog.graph, x)
    for k, p in promise.outputs.items():
        assert float(np.abs(got[k] - ref[k]).max()) <= p.allowed, k
