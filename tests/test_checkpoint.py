"""Checkpoints (format v2): save/load round trips bit-for-bit, reproducible bytes, refusals (v1 included), and a
truthful manifest (every placement's decode matrix, every read-out) on every backend in the registry."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS, get_backend
from safetensors.torch import load_file

from lsrl import compile_source, interpret, load_program
from lsrl.compiling import DTYPES, Compiled, CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.guarantee.promise import Promise
from lsrl.runtime.checkpoint import (
    CONFIG_FILE,
    FORMAT_VERSION,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    build_manifest,
    load,
    load_config,
    load_manifest,
    match_trace,
    recorded_promise,
    save_checkpoint,
)

ROOT = Path(__file__).parent.parent
NAMES = sorted(BACKENDS)

MORE_ONES = """\
# 1 while more ones than zeros have been read so far
param half = 1/2
input x[1] in {0, 1}
state ones = 0
state zeros = 0
ones <- ones + x
zeros <- zeros + (1 - x)
let d = ones - zeros
probe diff = d
output step(d - half)
"""

# a vector state that goes negative (rnn: (+, -) unit pairs, dim 2) and a vector gate (dim 2)
GATED = """\
input x[1] in {0..5}
state c = 0
c <- c + 1
state v[2] = 0
v <- v + cat(x - 2, 1 - x)
let flag = larger(c, 7 / 2)  # c > 3 for the integer c, with every kink half a unit off the integers
let g = flag * v
let w = g + v
probe gp = g
output flag * x + (1 - flag) * c + w[0]
"""

# a function local bound twice at the same span: its nodes cannot be matched to the trace one to one
LOCAL = """\
input x[1] in {0, 1}
def acc(a) {
  let y = accumulate(2 * a)
  return y
}
state s = 0
s <- s + x
output acc(x) + acc(1 - x) + s
"""


def _compile(src: str, name: str, backend: str = "lrnn", dtype: str = "float64", optimize: bool = False,
             max_len: int | None = None) -> Compiled:
    return compile_program(
        compile_source(src, name), CompileOptions(backend=backend, dtype=dtype, optimize=optimize, max_len=max_len)
    )


def _inputs(compiled: Compiled, seed: int = 0, batch: int = 4, length: int = 17) -> np.ndarray:
    return compiled.program.input.sample(np.random.default_rng(seed), batch, length)


def _same_outputs(a: torch.nn.Module, b: torch.nn.Module, x: np.ndarray, dtype: str) -> None:
    xt = torch.tensor(x, dtype=DTYPES[dtype])
    with torch.no_grad():
        ya, pa = a(xt, probes=True)
        yb, pb = b(xt, probes=True)
    assert ya.dtype == yb.dtype == DTYPES[dtype]
    assert torch.equal(ya, yb)
    assert pa.keys() == pb.keys() and all(torch.equal(pa[k], pb[k]) for k in pa)


def _code(directory) -> str:
    with pytest.raises(LsrlError) as exc:
        load(directory)
    rendered = str(exc.value)
    assert "Traceback" not in rendered and "hint:" in rendered
    return exc.value.diagnostics[0].code


# ---------------------------------------------------------------- round trips


@pytest.mark.parametrize("dtype", ["float32", "float64"])
@pytest.mark.parametrize("backend", NAMES)
def test_round_trip_is_bit_exact(tmp_path, backend, dtype):
    c = _compile(GATED, "g.lsrl", backend=backend, dtype=dtype)
    path = save_checkpoint(c, tmp_path / "ck")
    assert path == tmp_path / "ck"
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, MANIFEST_FILE, WEIGHTS_FILE]
    m = load(path)
    assert type(m) is type(c.module)
    for seed in range(2):
        _same_outputs(m, c.module, _inputs(c, seed), dtype)
    tensors = load_file(str(path / WEIGHTS_FILE))
    assert all(t.dtype == DTYPES[dtype] and t.is_contiguous() for t in tensors.values())
    assert tensors.keys() == c.module.state_dict().keys()
    prefix = get_backend(backend).prefix
    layers = {k.split(".")[1] for k in tensors if k.startswith(f"{prefix}.")}
    # parameter names {prefix}.{i}.*: each i holds stages (one each, or hawk's two halves)
    assert layers == {n.split(".")[1] for n in c.emitted.stage_layers(prefix, len(c.stack.stages))}


# ---------------------------------------------------------------- reproducibility


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("backend", NAMES)
def test_compiling_twice_gives_byte_identical_files(tmp_path, backend):
    def make():
        return _compile(GATED, "g.lsrl", backend=backend, dtype="float32")

    first = _files(save_checkpoint(make(), tmp_path / "a"))
    for i in range(3):  # safetensors' own metadata order varies from call to call
        assert _files(save_checkpoint(make(), tmp_path / f"b{i}")) == first


def test_byte_identical_across_processes_and_paths(tmp_path):
    src = tmp_path / "src" / "more_ones.lsrl"
    src.parent.mkdir()
    src.write_text(MORE_ONES)
    script = (
        "import sys; from lsrl import load_program; from lsrl.compiling import CompileOptions, compile_program;"
        "from lsrl.runtime.checkpoint import save_checkpoint;"
        "save_checkpoint(compile_program(load_program(sys.argv[1]), CompileOptions(optimize=False)), "
        "sys.argv[2])"
    )
    subprocess.run(
        [sys.executable, "-c", script, str(src), str(tmp_path / "child")],
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "123"},
    )
    os.chdir(src.parent)  # a relative source path this time
    try:
        c = compile_program(load_program("more_ones.lsrl"), CompileOptions(optimize=False))
    finally:
        os.chdir(ROOT)
    here = _files(save_checkpoint(c, tmp_path / "here"))
    assert _files(tmp_path / "child") == here
    for name in (CONFIG_FILE, MANIFEST_FILE):
        text = here[name].decode()
        assert str(tmp_path) not in text and "/src/" not in text


# ---------------------------------------------------------------- config contents


def test_config_records_program_options_and_hash(tmp_path):
    import hashlib

    import lsrl

    c = _compile(MORE_ONES, "more_ones.lsrl", dtype="float32")
    save_checkpoint(c, tmp_path)
    cfg = load_config(tmp_path)
    assert cfg["format_version"] == FORMAT_VERSION == 2
    assert cfg["backend"] == "lrnn" and cfg["dtype"] == "float32" and cfg["lsrl_version"] == lsrl.__version__
    assert cfg["compile_options"] == {
        "backend": "lrnn",
        "dtype": "float32",
        "max_len": None,
        "optimize": False,
    }
    assert cfg["max_len"] == c.options.length_limit == 4096  # the effective max_len, the default here
    assert cfg["program"] == {
        "file": "more_ones.lsrl",
        "source_sha256": c.program.source_sha256,
        "params": {"half": "1/2"},
        "input": {"name": "x", "dim": 1, "domain": {"kind": "set", "values": ["0", "1"]}},
    }
    assert cfg["weights"]["sha256"] == hashlib.sha256((tmp_path / WEIGHTS_FILE).read_bytes()).hexdigest()
    assert cfg["tensors"] == {k: list(v.shape) for k, v in c.module.state_dict().items()}
    rebuilt = get_backend("lrnn").build_module(cfg["module_config"])
    assert {k: list(v.shape) for k, v in rebuilt.state_dict().items()} == cfg["tensors"]
    from safetensors import safe_open

    with safe_open(str(tmp_path / WEIGHTS_FILE), "pt") as fh:
        meta = fh.metadata()
    assert (
        meta["format"] == "pt"
        and meta["lsrl_version"] == lsrl.__version__
        and meta["lsrl_format_version"] == "2"
    )
    text = (tmp_path / CONFIG_FILE).read_text()
    assert text == json.dumps(cfg, indent=2) + "\n" and list(cfg) == sorted(cfg)
    assert list(cfg["program"]) == sorted(cfg["program"])
    assert load_manifest(tmp_path)["format_version"] == 2


@pytest.mark.parametrize("backend", NAMES)
def test_config_records_max_len_and_the_promise(tmp_path, backend):
    c = _compile(MORE_ONES, "more_ones.lsrl", backend=backend, dtype="float32", max_len=64)
    cfg = load_config(save_checkpoint(c, tmp_path))
    assert cfg["max_len"] == cfg["compile_options"]["max_len"] == 64
    promise = cfg["promise"]
    assert promise == json.loads(json.dumps(c.promise("float32").to_json()))
    assert promise["backend"] == backend and promise["dtype"] == "float32" and promise["max_len"] == 64
    assert set(promise["outputs"]) == {"output", "diff"} and "rel_tol" not in promise
    assert recorded_promise(cfg, tmp_path) == Promise.from_json(promise)
    keys = {"lrnn": ("stages",), "mamba": ("hidden", "inners", "states", "hiddens", "readout_in", "output_dim",
                                          "probes"),
            "hawk": ("hidden", "lru", "mlp", "slots", "integrators", "hiddens", "readout_in", "output_dim",
                     "probes")}.get(backend, ("inputs", "hiddens", "readout_in", "output_dim",
                                                                  "probes"))
    for key in keys:
        assert key in cfg["module_config"]


def test_probe_order_survives_sorted_json(tmp_path):
    """The backend's config lists probes in head order; the checkpoint must not sort them."""
    src = "input x[1]\nstate s[2] = 0\ns <- s + cat(x, 2 * x)\nprobe zz = s\nprobe aa = s[0]\noutput s[1]\n"
    c = _compile(src, "p.lsrl")
    assert list(c.emitted.config["probes"]) == ["zz", "aa"]
    _same_outputs(load(save_checkpoint(c, tmp_path)), c.module, _inputs(c), "float64")


# ---------------------------------------------------------------- refusals


@pytest.fixture
def ck(tmp_path) -> Path:
    return save_checkpoint(_compile(MORE_ONES, "more_ones.lsrl", dtype="float32"), tmp_path / "ck")


def _edit_config(ck: Path, edit) -> None:
    cfg = json.loads((ck / CONFIG_FILE).read_text())
    edit(cfg)
    (ck / CONFIG_FILE).write_text(json.dumps(cfg))


def test_refuses_tampered_weights(ck):
    data = bytearray((ck / WEIGHTS_FILE).read_bytes())
    data[-3] ^= 0x01  # one bit of one weight
    (ck / WEIGHTS_FILE).write_bytes(bytes(data))
    assert _code(ck) == "E0806"


@pytest.mark.parametrize("backend", NAMES)
def test_every_backend_refuses_tampered_weights(tmp_path, backend):
    ck = save_checkpoint(_compile(MORE_ONES, "more_ones.lsrl", backend=backend), tmp_path)
    data = bytearray((ck / WEIGHTS_FILE).read_bytes())
    data[len(data) // 2] ^= 0x01
    (ck / WEIGHTS_FILE).write_bytes(bytes(data))
    assert _code(ck) == "E0806"


def test_refuses_a_corrupt_weights_file_even_with_a_matching_hash(ck):
    import hashlib

    (ck / WEIGHTS_FILE).write_bytes(b"\xff" * 64)
    _edit_config(ck, lambda c: c["weights"].update(sha256=hashlib.sha256(b"\xff" * 64).hexdigest()))
    assert _code(ck) == "E0809"


def test_refuses_an_edited_shape(ck):
    _edit_config(ck, lambda c: c["tensors"].update({"stages.0.A": [3, 2]}))
    assert _code(ck) == "E0807"


def test_refuses_an_edited_module_config(ck):
    _edit_config(ck, lambda c: c["module_config"]["stages"][0]["shapes"].update(A=[3, 3]))
    assert _code(ck) == "E0807"


def test_refuses_a_dtype_mismatch(ck):
    _edit_config(ck, lambda c: c.update(dtype="float64"))
    assert _code(ck) == "E0808"
    _edit_config(ck, lambda c: c.update(dtype="int8"))
    assert _code(ck) == "E0808"


def test_refuses_a_renamed_tensor(ck):
    _edit_config(ck, lambda c: c["tensors"].update({"stages.0.Z": c["tensors"].pop("stages.0.A")}))
    assert _code(ck) == "E0810"


def test_refuses_an_unknown_backend(ck):
    _edit_config(ck, lambda c: c.update(backend="transformer"))
    assert _code(ck) == "E0805"


@pytest.mark.parametrize(
    "edit",
    [
        lambda c: c.update(lsrl_version="banana"),
        lambda c: c.update(format_version=99),
        lambda c: c.update(format_version="2"),
        lambda c: c.update(format="something-else"),
    ],
)
def test_refuses_unsupported_formats_and_versions(ck, edit):
    _edit_config(ck, edit)
    assert _code(ck) == "E0804"


def _v1_message(err: LsrlError) -> str:
    d = err.diagnostics[0]
    assert d.code == "E0804"
    text = str(err)
    for words in ("format_version 1", "encoding strings", "rel_tol", "lsrl compile"):
        assert words in text, words
    return text


def test_refuses_a_v1_checkpoint_with_a_recompile_message(ck):
    def to_v1(c):  # what a version 1 config looked like: a scalar promise, no max_len
        c.update(format_version=1, promise={"exact_in_reals": True, "rel_tol": 1e-12, "note": ""})
        c.pop("max_len")

    _edit_config(ck, to_v1)
    assert _code(ck) == "E0804"
    with pytest.raises(LsrlError) as exc:
        load(ck)
    assert CONFIG_FILE in _v1_message(exc.value)
    with pytest.raises(LsrlError) as exc:
        load_config(ck)
    _v1_message(exc.value)


def test_refuses_a_v1_manifest(ck):
    man = json.loads((ck / MANIFEST_FILE).read_text())
    man["format_version"] = 1
    (ck / MANIFEST_FILE).write_text(json.dumps(man))
    with pytest.raises(LsrlError) as exc:
        load_manifest(ck)
    assert MANIFEST_FILE in _v1_message(exc.value)


@pytest.mark.parametrize(
    "garbage", ["{not json", "[1, 2]", f'{{"format": "lsrl-checkpoint", "format_version": {FORMAT_VERSION}}}', ""]
)
def test_refuses_malformed_json(ck, garbage):
    (ck / CONFIG_FILE).write_text(garbage)
    assert _code(ck) == "E0803"


def test_refuses_a_module_config_the_backend_cannot_build(ck):
    _edit_config(ck, lambda c: c["module_config"].pop("stages"))
    assert _code(ck) == "E0803"


@pytest.mark.parametrize("name", [CONFIG_FILE, WEIGHTS_FILE])
def test_refuses_a_missing_file(ck, name):
    (ck / name).unlink()
    assert _code(ck) == "E0802"


def test_refuses_what_is_not_a_checkpoint(tmp_path, ck):
    assert _code(tmp_path / "nowhere") == "E0801"
    (tmp_path / "empty").mkdir()
    assert _code(tmp_path / "empty") == "E0801"
    assert _code(ck / WEIGHTS_FILE) == "E0801"


def test_manifest_refusals(ck):
    (ck / MANIFEST_FILE).write_text("{")
    with pytest.raises(LsrlError) as exc:
        load_manifest(ck)
    assert exc.value.diagnostics[0].code == "E0803"
    (ck / MANIFEST_FILE).unlink()
    with pytest.raises(LsrlError) as exc:
        load_manifest(ck)
    assert exc.value.diagnostics[0].code == "E0802"


def test_unwritable_destination(tmp_path):
    (tmp_path / "file").write_text("x")
    with pytest.raises(LsrlError) as exc:
        save_checkpoint(_compile(MORE_ONES, "more_ones.lsrl"), tmp_path / "file" / "ck")
    assert exc.value.diagnostics[0].code == "E0811"


# ---------------------------------------------------------------- the manifest tells the truth


def _activations(module: torch.nn.Module, manifest: dict, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's activation vectors under the manifest's layer names, caught by forward hooks on those
    submodules while the module runs (an nn.RNN/GRU/LSTM returns a tuple whose first item is its output
    sequence; an lrnn stage returns the tensor itself)."""
    acts = {"input": x}

    def keep(name):
        def hook(_module, _args, output):
            out = output[0] if isinstance(output, tuple) else output
            acts[name] = out.detach().to(torch.float64).numpy()

        return hook

    handles = [module.get_submodule(la["name"]).register_forward_hook(keep(la["name"]))
               for la in manifest["layers"][1:]]
    try:
        with torch.no_grad():
            module(torch.tensor(x, dtype=torch.float64))
    finally:
        for h in handles:
            h.remove()
    return acts


def _exact(strings) -> np.ndarray:
    """A manifest's exact rational strings ("p/q" or "p") as an object array of Fractions."""
    return np.array([[Fraction(v) for v in row] for row in strings] if strings and isinstance(strings[0], list)
                    else [Fraction(v) for v in strings], dtype=object)


def _decoded(p: dict, dim: int, acts: dict[str, np.ndarray]) -> np.ndarray:
    """A placement's value: decode @ units[start:stop] + offset (float64 of the exact decode and offset)."""
    width = p["stop"] - p["start"]
    dec, off = _exact(p["decode"]).reshape(dim, width), _exact(p["offset"]).reshape(dim)
    weight = np.array(p["weight"], dtype=np.float64).reshape(dim, width)
    assert np.array_equal(weight, dec.astype(np.float64)), "weight is not the float64 of decode"
    return acts[p["layer"]][..., p["start"] : p["stop"]] @ weight.T + off.astype(np.float64)


def _read(entry: dict, acts: dict[str, np.ndarray]) -> np.ndarray:
    r = entry["readout"]
    units = (
        acts[r["layer"]][..., r["start"] : r["stop"]]
        if r["layer"]
        else np.zeros(acts["input"].shape[:2] + (0,))
    )
    return units @ np.array(r["weight"], dtype=np.float64).reshape(entry["dim"], -1).T + np.array(r["bias"])


def _entries(manifest: dict) -> list[dict]:
    return ([e for es in manifest["variables"].values() for e in es]
            + [p["value"] for p in manifest["probes"].values()] + [manifest["output"]["value"]])


def _check_manifest(c: Compiled, manifest: dict, x: np.ndarray, min_checked: int, min_matched: int) -> None:
    """Every placement (decode @ units + offset) and every read-out in the manifest reproduces the value of its
    node: the value the interpreter's trace of the *program's* graph reports for it (matched by match_trace),
    or, for the few nodes match_trace leaves out, the trace of the optimised graph the ids belong to."""
    backend = get_backend(c.options.backend)
    acts = _activations(c.module, manifest, x)
    assert [la["name"] for la in manifest["layers"]] == list(acts)
    assert list(acts)[1:] == c.emitted.stage_layers(backend.prefix, len(c.stack.stages))
    for la, st in zip(manifest["layers"][1:], c.stack.stages, strict=True):
        assert la["kind"] == st.kind
    for la in manifest["layers"]:
        assert acts[la["name"]].shape[-1] == la["width"]
    optimised = interpret(c.graph, x, trace=True).values
    program = interpret(c.program.graph, x, trace=True).values
    match = match_trace(manifest, c.program.graph)
    by_id = {n.id: n for n in c.program.graph.nodes}
    checked, placed = 0, 0
    for e in _entries(manifest):
        assert e["span"] is None or "/" not in e["span"]["file"]
        if e["node"] in match:
            theirs = by_id[match[e["node"]]]
            assert (theirs.label, theirs.dim) == (e["label"], e["dim"]) and theirs.span.line == e["span"]["line"]
            want = program[theirs.id]
        else:
            want = optimised[e["node"]]
        assert e["materialized"] == bool(e["placements"])
        for p in e["placements"]:  # every copy of a materialized value holds it
            got = _decoded(p, e["dim"], acts)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=f"{e['label']} {p['layer']}")
            placed += 1
        if e["readout"] is None:
            assert not e["materialized"] and e["depends_on"]
            continue
        np.testing.assert_allclose(_read(e, acts), want, rtol=0, atol=1e-9, err_msg=e["label"])
        checked += 1
    for name, p in manifest["probes"].items():
        np.testing.assert_allclose(
            _read(p["value"], acts), optimised[dict(c.graph.probes)[name]], rtol=0, atol=1e-9
        )
    np.testing.assert_allclose(
        _read(manifest["output"]["value"], acts), optimised[c.graph.output], rtol=0, atol=1e-9
    )
    assert checked >= min_checked and placed >= min_checked and len(match) >= min_matched


def test_manifest_locates_the_state_ones(tmp_path):
    c = _compile(MORE_ONES, "more_ones.lsrl")
    man = load_manifest(save_checkpoint(c, tmp_path))
    assert man == json.loads(json.dumps(build_manifest(c)))
    assert man["format_version"] == FORMAT_VERSION and man["backend"] == "lrnn"
    (ones,) = man["variables"]["ones"]
    assert ones["materialized"] and ones["op"] == "linstate" and ones["dim"] == 1
    assert ones["span"] == {"file": "more_ones.lsrl", "line": 4, "col": 1, "end_line": 4, "end_col": 15}
    x = _inputs(c)
    acts = _activations(load(tmp_path), man, x)
    want = interpret(c.graph, x, trace=True).named(c.graph)["ones"]
    assert ones["placements"]
    for p in ones["placements"]:  # lrnn: the units are the value (identity decode, no offset)
        assert p["layer"].startswith("stages.") and p["stop"] - p["start"] == 1
        assert p["decode"] == [["1"]] and p["offset"] == ["0"] and p["weight"] == [[1.0]]
        np.testing.assert_array_equal(acts[p["layer"]][..., p["start"] : p["stop"]], want)
    (xin,) = man["variables"]["x"]
    assert xin["placements"] == [
        {"layer": "input", "start": 0, "stop": 1, "decode": [["1"]], "offset": ["0"], "weight": [[1.0]]}
    ]
    (d,) = man["variables"]["d"]  # a fused linear view: read out over the units of ones and zeros
    assert not d["materialized"] and {x["label"] for x in d["depends_on"]} == {"ones", "zeros"}
    assert man["probes"]["diff"]["value"] == d and man["probes"]["diff"]["head"] == "probe_heads.0"
    assert man["output"]["head"] == "readout" and man["output"]["value"]["label"] == "output"
    _check_manifest(c, man, x, min_checked=4, min_matched=4)


@pytest.mark.parametrize("backend", NAMES)
def test_tok2tok_round_trips_and_its_manifest_is_true_for_every_variable(tmp_path, backend):
    """A real program, compiled as `lsrl compile` does (optimised): once per backend, for both checks."""
    c = compile_program(load_program(str(ROOT / "programs" / "tok2tok.lsrl")), CompileOptions(backend=backend))
    path = save_checkpoint(c, tmp_path)
    _same_outputs(load(path), c.module, _inputs(c, length=24), "float64")
    man = load_manifest(path)
    assert man["program"] == "tok2tok.lsrl" and man["backend"] == backend
    _check_manifest(c, man, _inputs(c, length=20), min_checked=20, min_matched=20)


def test_readouts_compose_forms_with_decode_and_offset():
    """read-out of d = ones - zeros where ones = 2 u + 3 and zeros = u'/2 - 1: weight (2, -1/2), bias 3 + 1."""
    import dataclasses

    from lsrl.ir.rational import RatArray

    c = _compile(MORE_ONES, "more_ones.lsrl")
    ids = {n.label: n.id for n in c.graph.nodes if n.label}
    scale = {ids["ones"]: (Fraction(2), Fraction(3)), ids["zeros"]: (Fraction(1, 2), Fraction(-1))}
    c.emitted.placements = [
        dataclasses.replace(p, decode=RatArray.of(np.array([[scale[p.node][0]]], dtype=object)),
                            offset=RatArray.of(np.array([scale[p.node][1]], dtype=object)))
        if p.node in scale else p
        for p in c.emitted.placements
    ]
    man = build_manifest(c)
    (ones,), (zeros,), (d,) = man["variables"]["ones"], man["variables"]["zeros"], man["variables"]["d"]
    assert {(p["decode"][0][0], p["offset"][0], p["weight"][0][0]) for p in ones["placements"]} == {("2", "3", 2.0)}
    assert {(p["decode"][0][0], p["offset"][0], p["weight"][0][0]) for p in zeros["placements"]} == {
        ("1/2", "-1", 0.5)}
    u, v = ones["placements"][0], zeros["placements"][0]
    assert u["layer"] == v["layer"] == d["readout"]["layer"]  # the earliest layer holding both
    r = d["readout"]
    w = dict(zip(range(r["start"], r["stop"]), r["weight"][0], strict=True))
    assert (w[u["start"]], w[v["start"]]) == (2.0, -0.5) and r["bias"] == [4.0]
    assert ones["readout"]["weight"] == [[2.0]] and ones["readout"]["bias"] == [3.0]


def _is_identity(p: dict) -> bool:
    dec = _exact(p["decode"])
    return dec.ndim == 2 and dec.shape[0] == dec.shape[1] and (dec == np.eye(dec.shape[0], dtype=int)).all() and all(
        v == "0" for v in p["offset"])


@pytest.mark.parametrize("optimize", [False, True])
@pytest.mark.parametrize("backend", NAMES)
def test_manifest_is_true_for_pairs_gates_and_scaled_units(tmp_path, backend, optimize):
    c = _compile(GATED, "g.lsrl", backend=backend, optimize=optimize)
    man = load_manifest(save_checkpoint(c, tmp_path))
    placements = [p for es in man["variables"].values() for e in es for p in e["placements"]]
    # lrnn layers hold the values themselves; torch RNN-family layers hold (+, -) pairs, scaled units or switch
    # pairs, which only the decode matrices turn back into values
    vanilla = isinstance(getattr(c.module, get_backend(backend).prefix)[0], torch.nn.RNNBase)
    assert all(map(_is_identity, placements)) != vanilla
    _check_manifest(c, man, _inputs(c, seed=1, length=12), min_checked=5, min_matched=5)


@pytest.mark.parametrize("backend", NAMES)
def test_manifest_after_optimisation(tmp_path, backend):
    c = compile_program(load_program(str(ROOT / "programs" / "dyck1.lsrl")), CompileOptions(backend=backend))
    man = load_manifest(save_checkpoint(c, tmp_path))
    match = match_trace(man, c.program.graph)
    assert any(ours != theirs for ours, theirs in match.items())  # the optimiser renumbered the nodes
    _check_manifest(c, man, _inputs(c, length=30), min_checked=5, min_matched=5)


# ---------------------------------------------------------------- match_trace


def test_match_trace_is_the_identity_without_optimisation():
    c = _compile(MORE_ONES, "more_ones.lsrl")
    assert c.graph is c.program.graph
    man = build_manifest(c)
    match = match_trace(man, c.program.graph)
    labelled = {e["node"] for e in _entries(man)}
    assert match == {n: n for n in labelled}


def test_match_trace_pairs_optimised_nodes_by_label_and_span():
    c = compile_program(load_program(str(ROOT / "programs" / "dyck1.lsrl")), CompileOptions())
    assert c.graph is not c.program.graph
    man = build_manifest(c)
    match = match_trace(man, c.program.graph)
    by_id = {n.id: n for n in c.program.graph.nodes}
    entries = {e["node"]: e for e in _entries(man)}
    assert set(match) == set(entries)  # every labelled node of dyck1 survives optimisation, uniquely
    for ours, theirs in match.items():
        n, e = by_id[theirs], entries[ours]
        assert n.label == e["label"] and n.dim == e["dim"]
        assert (os.path.basename(n.span.file), n.span.line, n.span.col, n.span.end_line, n.span.end_col) == (
            e["span"]["file"], e["span"]["line"], e["span"]["col"], e["span"]["end_line"], e["span"]["end_col"])
    x = _inputs(c, length=25)
    program = interpret(c.program.graph, x, trace=True).values
    optimised = interpret(c.graph, x, trace=True).values
    for ours, theirs in match.items():
        np.testing.assert_array_equal(program[theirs], optimised[ours])


def test_match_trace_leaves_out_ambiguous_and_unknown_nodes():
    c = _compile(LOCAL, "local.lsrl", optimize=True)
    man = build_manifest(c)
    ys = man["variables"]["acc.y"]
    assert len(ys) == 2 and ys[0]["span"] == ys[1]["span"]  # one local, bound at one span on both calls
    match = match_trace(man, c.program.graph)
    assert not {y["node"] for y in ys} & set(match)
    (s,) = man["variables"]["s"]
    assert s["node"] in match
    # a node whose span or label the program does not have, and a manifest without spans, match nothing
    moved = json.loads(json.dumps(man))
    for e in _entries(moved):
        if e["span"]:
            e["span"]["line"] += 100
    assert match_trace(moved, c.program.graph) == {}
    assert match_trace({"variables": {}, "probes": {}, "output": {"value": {"node": 0, "label": "x", "dim": 1,
                                                                             "span": None}}},
                       c.program.graph) == {}


# ---------------------------------------------------------------- lsrl verify --checkpoint


@pytest.mark.parametrize("backend", NAMES)
def test_verify_checkpoint_uses_the_recorded_params_and_promise(tmp_path, capsys, backend):
    from lsrl.cli import main

    src, ck = str(ROOT / "programs/counter.lsrl"), tmp_path / "ck"
    args = ["compile", src, "--backend", backend, "-D", "token=7", "--max-len", "64", "-o", str(ck)]
    assert main(args) == 0
    cfg = json.loads((ck / CONFIG_FILE).read_text())
    promise = Promise.from_json(cfg["promise"])
    assert cfg["max_len"] == promise.max_len == 64 and promise.backend == backend
    capsys.readouterr()
    assert main(["verify", src, "--checkpoint", str(ck), "--samples", "8", "--length", "40"]) == 0
    out = capsys.readouterr().out
    assert "token=7" in out and promise.summary() in out and "PASS" in out


def _break_readout(ck: Path) -> None:
    """Scale the readout weights (and re-record the hash, so only verification can notice)."""
    import hashlib

    from safetensors.torch import save_file

    tensors = load_file(str(ck / WEIGHTS_FILE))
    tensors["readout.weight"] = tensors["readout.weight"] * 1.001
    save_file(tensors, str(ck / WEIGHTS_FILE), metadata={"format": "pt"})
    _edit_config(ck, lambda c: c["weights"].update(sha256=hashlib.sha256((ck / WEIGHTS_FILE).read_bytes()).hexdigest()))


def test_verify_checkpoint_fails_a_wrong_model_and_refuses_a_mismatch(tmp_path, capsys):
    from lsrl.cli import main

    src, ck = str(ROOT / "programs/counter.lsrl"), tmp_path / "ck"
    assert main(["compile", src, "-D", "token=7", "-o", str(ck)]) == 0
    assert main(["verify", src, "--checkpoint", str(ck), "-D", "token=8"]) == 1  # other params
    assert "E0704" in capsys.readouterr().err
    assert main(["verify", str(ROOT / "programs/parity.lsrl"), "--checkpoint", str(ck)]) == 1  # other source
    assert "E0704" in capsys.readouterr().err
    assert main(["verify", src, "--checkpoint", str(ck), "--dtype", "float32"]) == 1
    assert "E0705" in capsys.readouterr().err
    _break_readout(ck)
    assert main(["verify", src, "--checkpoint", str(ck), "--samples", "4", "--length", "20"]) == 1
    assert "FAIL" in capsys.readouterr().out
    _edit_config(ck, lambda c: c.pop("promise"))
    assert main(["verify", src, "--checkpoint", str(ck)]) == 1
    assert "records no valid promise" in capsys.readouterr().err
