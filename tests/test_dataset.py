"""lsrl.interpretability.build_dataset / lsrl dataset: shards, datasheet, ground truth, linear probes."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from lsrl.backends import BACKENDS
from safetensors.numpy import load_file

from lsrl import load_program, save_checkpoint
from lsrl.cli import main
from lsrl.compiling import CompileOptions, compile_program
from lsrl.interpretability import build_dataset

ROOT = Path(__file__).parent.parent


def _checkpoint(tmp_path, backend: str, name: str):
    prog = load_program(str(ROOT / f"programs/{name}.lsrl"))
    save_checkpoint(compile_program(prog, CompileOptions(backend, max_len=64)), tmp_path / "ck")
    return prog, tmp_path / "ck"


@pytest.mark.parametrize("backend", sorted(BACKENDS))
def test_a_linear_probe_on_the_activations_recovers_a_variable(backend, tmp_path):
    """The dataset's layer holding `balance` linearly determines the interpreter's `balance`: a least-squares
    probe fitted on the activations has R^2 > 0.999 (here exactly 1: the decode is linear)."""
    prog, ck = _checkpoint(tmp_path, backend, "more_ones")
    sheet = build_dataset(ck, tmp_path / "ds", n=40, length=24, program=prog, shard_size=16, progress=False)
    assert [s["sequences"] for s in sheet["shards"]] == [16, 16, 8]
    shards = [load_file(str(tmp_path / "ds" / s["file"])) for s in sheet["shards"]]
    t = {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}
    np.testing.assert_allclose(t["decoded/balance"], t["reference/balance"], rtol=0, atol=1e-9)
    np.testing.assert_allclose(t["output"], t["reference/output"], rtol=0, atol=1e-9)
    layer = next(k for k in t if k.startswith("layer/"))  # the first layer holds the state `balance`
    a = t[layer].reshape(-1, t[layer].shape[-1])
    y = t["reference/balance"].reshape(-1)
    features = np.column_stack([a, np.ones(len(a))])
    w = np.linalg.lstsq(features, y, rcond=None)[0]
    r2 = 1 - np.sum((features @ w - y) ** 2) / np.sum((y - y.mean()) ** 2)
    assert r2 > 0.999


def test_datasets_are_deterministic_and_described(tmp_path):
    prog, ck = _checkpoint(tmp_path, "rnn", "dyck1")
    a = build_dataset(ck, tmp_path / "a", n=20, length=16, seed=3, shard_size=8, progress=False)
    b = build_dataset(ck, tmp_path / "b", n=20, length=16, seed=3, shard_size=8, progress=False)
    assert a == b and json.loads((tmp_path / "a" / "datasheet.json").read_text()) == a
    for s in a["shards"]:
        assert (tmp_path / "a" / s["file"]).read_bytes() == (tmp_path / "b" / s["file"]).read_bytes()
    first = load_file(str(tmp_path / "a" / a["shards"][0]["file"]))
    assert set(first) == set(a["tensors"]) and "reference/output" not in first  # no program: no reference
    assert all(d["shape"][1:] == [16, first[k].shape[-1]] and d["meaning"] for k, d in a["tensors"].items())
    c = build_dataset(ck, tmp_path / "c", n=20, length=16, seed=4, shard_size=8, progress=False)
    assert not np.array_equal(load_file(str(tmp_path / "c" / c["shards"][0]["file"]))["inputs"], first["inputs"])


def test_dataset_cli(tmp_path, capsys):
    prog, ck = _checkpoint(tmp_path, "lstm", "parity")
    assert main(["dataset", str(ck), "--n", "5", "--length", "10", "-o", str(tmp_path / "ds"),
                 "--program", str(ROOT / "programs/parity.lsrl")]) == 0
    assert "5 sequences of length 10" in capsys.readouterr().out
    assert main(["dataset", str(ck), "--n", "5", "--length", "100", "-o", str(tmp_path / "x")]) == 1  # > max_len
    assert main(["dataset", str(ck), "--n", "5", "--length", "10", "-o", str(tmp_path / "y"),
                 "--program", str(ROOT / "programs/dyck1.lsrl")]) == 1  # not the program it was compiled from
    assert main(["dataset", str(ck), "--n", "0", "--length", "10", "-o", str(tmp_path / "z")]) == 2
