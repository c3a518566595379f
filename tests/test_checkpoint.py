"""Checkpoints: save/load round trips bit-for-bit, reproducible bytes, refusals, and a truthful manifest."""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import get_backend
from safetensors.torch import load_file

from lsrl import compile_source, interpret, load_program
from lsrl.compile import DTYPES, Compiled, CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.lowering import lower
from lsrl.runtime.checkpoint import (
    CONFIG_FILE,
    MANIFEST_FILE,
    WEIGHTS_FILE,
    build_manifest,
    load,
    load_config,
    load_manifest,
    save_checkpoint,
)

ROOT = Path(__file__).parent.parent
HAVE_RANGES = (
    importlib.util.find_spec("lsrl.analysis") is not None
    and importlib.util.find_spec("lsrl.analysis.ranges") is not None
)
needs_ranges = pytest.mark.skipif(not HAVE_RANGES, reason="the rnn backend needs lsrl.analysis.ranges")

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

# a vector state that goes negative (pair units, dim 2) and a vector gate (gate units, dim 2)
GATED = """\
input x[1] in {0..5}
state c = 0
c <- c + 1
state v[2] = 0
v <- v + cat(x - 2, 1 - x)
let flag = larger(c, 3)
let g = flag * v
let w = g + v
probe gp = g
output flag * x + (1 - flag) * c + w[0]
"""


class StubFacts:
    """Facts observed on sample inputs (not proven): lets the rnn backend emit without range analysis."""

    def __init__(self, graph, x):
        self.graph = graph
        values = interpret(graph, x, trace=True).values
        self.booleans = {n for n, v in values.items() if np.isin(v, (0.0, 1.0)).all()}

    def is_boolean(self, n):
        return n in self.booleans

    def bound(self, n):
        return 64.0

    def nonnegative(self, n):
        return self.graph[n].op.mnemonic == "relu"


def _compile(src: str, name: str, backend: str = "lrnn", dtype: str = "float64") -> Compiled:
    return compile_program(
        compile_source(src, name), CompileOptions(backend=backend, dtype=dtype, optimize=False)
    )


def _stub_rnn(src: str, name: str, x: np.ndarray, dtype: str = "float64") -> Compiled:
    """An rnn-backend Compiled built with observed (stub) facts, so it works without lsrl.analysis."""
    prog = compile_source(src, name)
    stack, sched = lower(prog.graph)
    em = get_backend("rnn").emit(prog.graph, stack, StubFacts(prog.graph, x))
    em.module.to(DTYPES[dtype])
    return Compiled(
        prog, CompileOptions(backend="rnn", dtype=dtype, optimize=False), prog.graph, stack, sched, em
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
def test_lrnn_round_trip_is_bit_exact(tmp_path, dtype):
    c = _compile(MORE_ONES, "more_ones.lsrl", dtype=dtype)
    path = save_checkpoint(c, tmp_path / "ck")
    assert path == tmp_path / "ck"
    assert sorted(p.name for p in path.iterdir()) == [CONFIG_FILE, MANIFEST_FILE, WEIGHTS_FILE]
    m = load(path)
    assert type(m) is type(c.module)
    for seed in range(3):
        _same_outputs(m, c.module, _inputs(c, seed), dtype)
    tensors = load_file(str(path / WEIGHTS_FILE))
    assert all(t.dtype == DTYPES[dtype] and t.is_contiguous() for t in tensors.values())
    assert tensors.keys() == c.module.state_dict().keys()


def test_lrnn_round_trip_of_a_real_program(tmp_path):
    c = compile_program(
        load_program(str(ROOT / "programs" / "tok2tok.lsrl")),
        CompileOptions(backend="lrnn", dtype="float32", optimize=False),
    )
    _same_outputs(load(save_checkpoint(c, tmp_path)), c.module, _inputs(c, length=24), "float32")


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rnn_round_trip_is_bit_exact_stub_facts(tmp_path, dtype):
    x = compile_source(GATED, "g.lsrl").input.sample(np.random.default_rng(1), 4, 12)
    c = _stub_rnn(GATED, "g.lsrl", x, dtype)
    m = load(save_checkpoint(c, tmp_path))
    _same_outputs(m, c.module, x, dtype)


@needs_ranges
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_rnn_round_trip_is_bit_exact(tmp_path, dtype):
    c = _compile(GATED, "g.lsrl", backend="rnn", dtype=dtype)
    m = load(save_checkpoint(c, tmp_path))
    _same_outputs(m, c.module, _inputs(c), dtype)


@needs_ranges
def test_rnn_weights_load_into_vanilla_torch_modules(tmp_path):
    c = _compile(GATED, "g.lsrl", backend="rnn", dtype="float32")
    save_checkpoint(c, tmp_path)
    cfg = json.loads((tmp_path / CONFIG_FILE).read_text())
    mc, tensors = cfg["module_config"], load_file(str(tmp_path / WEIGHTS_FILE))
    rnns = []
    for i, (n_in, n_h) in enumerate(zip(mc["inputs"], mc["hiddens"], strict=True)):
        rnn = torch.nn.RNN(n_in, n_h, nonlinearity="relu", batch_first=True)
        rnn.load_state_dict(
            {
                k: tensors[f"rnns.{i}.{k}"]
                for k in ("weight_ih_l0", "weight_hh_l0", "bias_ih_l0", "bias_hh_l0")
            }
        )
        rnns.append(rnn)
    head = torch.nn.Linear(mc["readout_in"], mc["output_dim"])
    head.load_state_dict({"weight": tensors["readout.weight"], "bias": tensors["readout.bias"]})
    x = torch.tensor(_inputs(c), dtype=torch.float32)
    with torch.no_grad():
        h = x
        for rnn in rnns:
            h, _ = rnn(h)
        assert torch.equal(head(h), c.module(x))


# ---------------------------------------------------------------- reproducibility


def _files(d: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(d.iterdir())}


@pytest.mark.parametrize("backend", ["lrnn", "rnn"])
def test_compiling_twice_gives_byte_identical_files(tmp_path, backend):
    if backend == "rnn":
        x = compile_source(GATED, "g.lsrl").input.sample(np.random.default_rng(1), 4, 12)
        make = (
            (lambda: _compile(GATED, "g.lsrl", backend="rnn"))
            if HAVE_RANGES
            else (lambda: _stub_rnn(GATED, "g.lsrl", x))
        )
    else:

        def make():
            return _compile(MORE_ONES, "more_ones.lsrl", dtype="float32")

    first = _files(save_checkpoint(make(), tmp_path / "a"))
    for i in range(3):  # safetensors' own metadata order varies from call to call
        assert _files(save_checkpoint(make(), tmp_path / f"b{i}")) == first


def test_byte_identical_across_processes_and_paths(tmp_path):
    src = tmp_path / "src" / "more_ones.lsrl"
    src.parent.mkdir()
    src.write_text(MORE_ONES)
    script = (
        "import sys; from lsrl import load_program; from lsrl.compile import CompileOptions, compile_program;"
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
    assert cfg["backend"] == "lrnn" and cfg["dtype"] == "float32" and cfg["lsrl_version"] == lsrl.__version__
    assert cfg["compile_options"] == {
        "backend": "lrnn",
        "dtype": "float32",
        "max_len": None,
        "optimize": False,
    }
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
        and meta["lsrl_format_version"] == "1"
    )
    text = (tmp_path / CONFIG_FILE).read_text()
    assert text == json.dumps(cfg, indent=2) + "\n" and list(cfg) == sorted(cfg)
    assert list(cfg["program"]) == sorted(cfg["program"])


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
        lambda c: c.update(format="something-else"),
    ],
)
def test_refuses_unsupported_formats_and_versions(ck, edit):
    _edit_config(ck, edit)
    assert _code(ck) == "E0804"


@pytest.mark.parametrize(
    "garbage", ["{not json", "[1, 2]", '{"format": "lsrl-checkpoint", "format_version": 1}', ""]
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


def _activations(module: torch.nn.Module, x: np.ndarray) -> dict[str, np.ndarray]:
    """Every layer's activation vectors (the manifest's layer names), run stage by stage."""
    h = torch.tensor(x, dtype=torch.float64)
    out = {"input": x}
    with torch.no_grad():
        if hasattr(module, "stages"):
            for i, st in enumerate(module.stages):
                h = st(h)
                out[f"stages.{i}"] = h.numpy()
        else:
            for i, rnn in enumerate(module.rnns):
                h, _ = rnn(h)
                out[f"rnns.{i}"] = h.numpy()
    return out


def _read(entry: dict, acts: dict[str, np.ndarray]) -> np.ndarray:
    r = entry["readout"]
    units = (
        acts[r["layer"]][..., r["start"] : r["stop"]]
        if r["layer"]
        else np.zeros(acts["input"].shape[:2] + (0,))
    )
    return units @ np.array(r["weight"], dtype=np.float64).reshape(entry["dim"], -1).T + np.array(r["bias"])


def _decoded(units: np.ndarray, encoding: str) -> np.ndarray:
    if encoding in ("linear", "relu"):
        return units
    assert encoding in ("pair", "gate")
    return units[..., 0::2] - units[..., 1::2]  # (+, -) unit pairs


def _check_manifest(c: Compiled, manifest: dict, x: np.ndarray, min_checked: int) -> None:
    """Every readout and every placement in the manifest reproduces the interpreter's value of its node."""
    acts = _activations(c.module, x)
    values = interpret(c.graph, x, trace=True).values
    assert [la["name"] for la in manifest["layers"]] == list(acts)
    for la in manifest["layers"]:
        assert acts[la["name"]].shape[-1] == la["width"]
    checked = 0
    for name, entries in manifest["variables"].items():
        for e in entries:
            assert e["label"] == name and (e["span"] is None or "/" not in e["span"]["file"])
            want = values[e["node"]]
            for p in e["placements"]:  # every copy of a materialized value holds it
                got = _decoded(acts[p["layer"]][..., p["start"] : p["stop"]], p["encoding"])
                np.testing.assert_allclose(got, want, rtol=0, atol=1e-9, err_msg=f"{name} {p}")
            if e["readout"] is None:
                assert not e["materialized"] and e["depends_on"]
                continue
            np.testing.assert_allclose(_read(e, acts), want, rtol=0, atol=1e-9, err_msg=name)
            checked += 1
    for name, p in manifest["probes"].items():
        np.testing.assert_allclose(
            _read(p["value"], acts), values[dict(c.graph.probes)[name]], rtol=0, atol=1e-9
        )
    np.testing.assert_allclose(
        _read(manifest["output"]["value"], acts), values[c.graph.output], rtol=0, atol=1e-9
    )
    assert checked >= min_checked


def test_manifest_locates_the_state_ones(tmp_path):
    c = _compile(MORE_ONES, "more_ones.lsrl")
    man = load_manifest(save_checkpoint(c, tmp_path))
    assert man == json.loads(json.dumps(build_manifest(c)))
    (ones,) = man["variables"]["ones"]
    assert ones["materialized"] and ones["op"] == "linstate" and ones["dim"] == 1
    assert ones["span"] == {"file": "more_ones.lsrl", "line": 4, "col": 1, "end_line": 4, "end_col": 15}
    x = _inputs(c)
    acts = _activations(load(tmp_path), x)
    want = interpret(c.graph, x, trace=True).named(c.graph)["ones"]
    assert ones["placements"]
    for p in ones["placements"]:
        assert p["layer"].startswith("stages.") and p["stop"] - p["start"] == 1 and p["encoding"] == "linear"
        np.testing.assert_array_equal(acts[p["layer"]][..., p["start"] : p["stop"]], want)
    (d,) = man["variables"]["d"]  # a fused linear view: read out over the units of ones and zeros
    assert not d["materialized"] and {x["label"] for x in d["depends_on"]} == {"ones", "zeros"}
    assert man["probes"]["diff"]["value"] == d and man["probes"]["diff"]["head"] == "probe_heads.0"
    assert man["output"]["head"] == "readout" and man["output"]["value"]["label"] == "output"
    _check_manifest(c, man, x, min_checked=4)


def test_manifest_is_true_for_every_variable_of_tok2tok(tmp_path):
    c = compile_program(load_program(str(ROOT / "programs" / "tok2tok.lsrl")), CompileOptions(optimize=False))
    man = load_manifest(save_checkpoint(c, tmp_path))
    assert man["program"] == "tok2tok.lsrl"
    _check_manifest(c, man, _inputs(c, length=20), min_checked=20)


def test_manifest_is_true_for_rnn_pairs_and_gates(tmp_path):
    x = compile_source(GATED, "g.lsrl").input.sample(np.random.default_rng(1), 4, 12)
    c = _stub_rnn(GATED, "g.lsrl", x) if not HAVE_RANGES else _compile(GATED, "g.lsrl", backend="rnn")
    man = load_manifest(save_checkpoint(c, tmp_path))
    encodings = {p["encoding"] for es in man["variables"].values() for e in es for p in e["placements"]}
    assert "gate" in encodings and ("pair" in encodings or HAVE_RANGES)
    _check_manifest(c, man, x, min_checked=3)


def test_manifest_after_optimisation(tmp_path):
    pytest.importorskip("lsrl.passes")
    c = compile_program(compile_source(MORE_ONES, "more_ones.lsrl"), CompileOptions(backend="lrnn"))
    man = load_manifest(save_checkpoint(c, tmp_path))
    _check_manifest(c, man, _inputs(c), min_checked=1)


# ---------------------------------------------------------------- lsrl verify --checkpoint


@needs_ranges
@pytest.mark.parametrize("backend", ["lrnn", "rnn"])
def test_verify_checkpoint_uses_the_recorded_params_and_promise(tmp_path, capsys, backend):
    from lsrl.cli import main

    src, ck = str(ROOT / "programs/counter.lsrl"), tmp_path / "ck"
    assert main(["compile", src, "--backend", backend, "-D", "token=7", "-o", str(ck)]) == 0
    promise = json.loads((ck / CONFIG_FILE).read_text())["promise"]
    assert 0 < promise["rel_tol"] < 1e-6
    capsys.readouterr()
    assert main(["verify", src, "--checkpoint", str(ck), "--samples", "8", "--length", "40"]) == 0
    out = capsys.readouterr().out
    assert "token=7" in out and f"promised rel err <= {promise['rel_tol']:.3g}" in out and "PASS" in out


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
    assert "records no promise" in capsys.readouterr().err
