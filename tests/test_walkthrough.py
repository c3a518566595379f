"""docs/interpretability.md's walkthrough, step by step, on every backend: compile -> dataset -> a linear
probe recovers a variable -> obfuscate -> the probe on the raw basis degrades while the updated decode still
recovers it -> an intervention in the compiled model matches the interpreter's."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from lsrl.backends import BACKENDS
from safetensors.numpy import load_file

from lsrl import interpret, load_program, save_checkpoint
from lsrl.compiling import CompileOptions, compile_program
from lsrl.interpretability import Intervention, build_dataset, intervene, node_of, trace
from lsrl.interpretability.obfuscate import obfuscate
from lsrl.runtime.checkpoint import build_manifest

ROOT = Path(__file__).parent.parent


def _fit(acts: np.ndarray, y: np.ndarray) -> tuple[np.ndarray, float]:
    f = np.column_stack([acts.reshape(-1, acts.shape[-1]), np.ones(y.size)])
    w = np.linalg.lstsq(f, y.reshape(-1), rcond=None)[0]
    return w, _r2(f @ w, y)


def _r2(pred: np.ndarray, y: np.ndarray) -> float:
    y = y.reshape(-1)
    return float(1 - np.sum((pred - y) ** 2) / np.sum((y - y.mean()) ** 2))


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_walkthrough(backend, tmp_path):
    # 1. compile (programs/dyck1.lsrl: `depth`, the running balance of brackets, is a state)
    prog = load_program(str(ROOT / "programs/dyck1.lsrl"))
    compiled = compile_program(prog, CompileOptions(backend, max_len=64))
    save_checkpoint(compiled, tmp_path / "ck")
    # 2. dataset: activations and the interpreter's values
    sheet = build_dataset(tmp_path / "ck", tmp_path / "ds", n=48, length=32, program=prog, progress=False)
    data = load_file(str(tmp_path / "ds" / sheet["shards"][0]["file"]))
    layer = [k for k in data if k.startswith("layer/")][-1]  # the last layer, which holds `depth` among others
    # 3. a linear probe on the activations recovers `depth`
    w, r2 = _fit(data[layer], data["reference/depth"])
    assert r2 > 0.999
    # 4. obfuscate: the same function in another basis (the first seed that moves a unit `depth` is read from: an lrnn
    # stage has no dead or scaled units, so a permutation of its few units can leave one in place)
    x, name = data["inputs"], layer.split("/", 1)[1]
    t0 = trace(compiled, x)
    place = next(p for p in compiled.emitted.placements if compiled.graph[p.node].label == "depth")
    units = place.start + np.flatnonzero((place.decode.num != 0).any(axis=0))  # (gru: P and its current part)
    for seed in range(20):
        hidden = obfuscate(compiled, seed=seed, dead=2)
        t1 = trace(hidden, x)
        if not np.array_equal(t1.layers[name][..., units], t0.layers[name][..., units]):
            break
    # 5. the probe fitted on the raw basis reads the obfuscated units poorly; the decode still recovers `depth`
    raw = t1.layers[name][..., :data[layer].shape[-1]].reshape(-1, data[layer].shape[-1])
    assert _r2(np.column_stack([raw, np.ones(len(raw))]) @ w, data["reference/depth"]) < 0.9
    np.testing.assert_allclose(t1.named()["depth"], data["reference/depth"], rtol=0, atol=1e-9)
    np.testing.assert_array_equal(t1.output, t0.output)
    # 6. an intervention in the model matches the interpreter's: depth set to another input's depth at step 5
    other = interpret(compiled.graph, prog.input.sample(np.random.default_rng(9), len(x), 32), trace=True)
    node = node_of(build_manifest(hidden), "depth")
    ref, y, _ = intervene(hidden, x, [Intervention(node, (5,), other.values[node])])
    np.testing.assert_allclose(y, ref.output, rtol=0, atol=1e-9)
    assert not np.array_equal(ref.output, t0.output)  # the intervention changed the answer
