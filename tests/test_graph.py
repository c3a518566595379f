"""lsrl.interpretability.graph / lsrl graph: the causal graph, its unit correspondence, DOT drawings."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from lsrl.backends import BACKENDS

from lsrl import interpret, load_program
from lsrl.cli import main
from lsrl.compiling import CompileOptions, compile_program
from lsrl.interpretability.graph import causal_graph, to_dot

ROOT = Path(__file__).parent.parent


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_the_correspondence_locates_every_materialized_value(backend):
    """Reading each node's single units (unit x coefficient, summed per component) from the layer
    activations gives the interpreter's value of that node: the map is exact at unit granularity."""
    prog = load_program(str(ROOT / "programs/dyck1.lsrl"))
    c = compile_program(prog, CompileOptions(backend, max_len=64))
    cg = causal_graph(c)
    x = prog.input.sample(np.random.default_rng(0), 3, 16)
    acts = {"input": x}
    names = c.emitted.stage_layers(BACKENDS[backend].prefix, len(c.stack.stages))
    hooks = [c.module.get_submodule(name).register_forward_hook(
        lambda m, a, o, name=name: acts.__setitem__(name, (o[0] if isinstance(o, tuple) else o).detach().numpy()))
        for name in names]
    with torch.no_grad():
        c.module(torch.tensor(x))
    for h in hooks:
        h.remove()
    ref = interpret(c.graph, x, trace=True)
    materialized = {n["id"] for n in cg["nodes"] if n["materialized"]}
    assert set(cg["correspondence"]) == materialized
    for node, where in cg["correspondence"].items():
        first = where["layers"][0]
        got = np.zeros_like(ref.values[node])
        for s in where["single_units"]:
            if s["layer"] == first:
                got[..., s["component"]] += s["coefficient"] * acts[first][..., s["unit"]]
        np.testing.assert_allclose(got, ref.values[node], rtol=0, atol=1e-9)
    # states read their own previous value: a lag-1 edge each
    states = {n["id"] for n in cg["nodes"] if n["op"] == "linstate"}
    assert {e["src"] for e in cg["edges"] if e["lag"] == 1} == states and states


def test_dot_drawings_and_the_cli(tmp_path, capsys):
    c = compile_program(load_program(str(ROOT / "programs/more_ones.lsrl")), CompileOptions("rnn"))
    cg = causal_graph(c)
    ir_dot, layers_dot = to_dot(cg, "ir"), to_dot(cg, "layers")
    assert ir_dot.startswith("digraph") and 'label="t-1"' in ir_dot and "balance" in ir_dot
    assert all(f'"{la["name"]}"' in layers_dot for la in cg["layers"])
    out = tmp_path / "g.dot"
    assert main(["graph", str(ROOT / "programs/more_ones.lsrl"), "-o", str(out), "--json",
                 str(tmp_path / "g.json")]) == 0
    assert out.read_text().startswith("digraph") and json.loads((tmp_path / "g.json").read_text())["edges"]
    rc = main(["graph", str(ROOT / "programs/more_ones.lsrl"), "--format", "svg", "-o", str(tmp_path / "g.svg")])
    if shutil.which("dot"):
        assert rc == 0 and b"<svg" in (tmp_path / "g.svg").read_bytes()
    else:
        assert rc == 1 and "E1004" in capsys.readouterr().err
