"""Datasets: a compiled model's inputs, outputs and activations, with the ground truth beside them.

`build_dataset(checkpoint, out_dir, n, length, program=None, seed=0, generator=None, generator_args=None)`
writes shards of `shard_size` sequences (so n x length larger than memory works) and a datasheet:

    out_dir/shard-00000.safetensors ...   tensors, each (sequences, length, width):
        inputs                           drawn by the input generator (below)
        output                           the model's output
        layer/<name>                     every layer's activations (`lsrl.interpretability.trace`)
        decoded/<variable>               each named value decoded from the model's units
        reference/output                 the interpreter's output            (with the program only)
        reference/<variable>             the interpreter's value of every named variable and probe
    out_dir/datasheet.json               what was built and what every tensor means

Inputs come from an input generator (lsrl.interpretability.generators): `generator` (a registered name,
"module:function" or a function) if given, else the one the program names (`generator NAME(...)`, as the
checkpoint records it), else `domain` (uniform tokens from the input domain). `generator_args` override or
add to the declared arguments (for the declared generator) or are the arguments (for another one).

Deterministic for a seed: shard i draws its inputs from numpy's generator seeded with (seed, i).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np

DATASHEET = "datasheet.json"


def build_dataset(checkpoint, out_dir, n: int, length: int, program=None, seed: int = 0, shard_size: int = 256,
                  progress: bool | None = None, generator=None, generator_args: dict | None = None) -> dict:
    """Write the dataset (see the module docstring); returns the datasheet. `program`: the Program the
    checkpoint was compiled from (checked against its recorded source hash and params), for the reference.
    `generator`, `generator_args`: the input generator (see the module docstring)."""
    from safetensors.numpy import save_file

    from lsrl.diagnostics import error
    from lsrl.interpretability.generators import choose
    from lsrl.interpretability.trace import trace
    from lsrl.ir.interpreter import interpret
    from lsrl.program import Domain, InputSpec
    from lsrl.runtime.checkpoint import check_program, load, load_config, load_manifest, recorded_generator

    cfg, module, manifest = load_config(checkpoint), load(checkpoint), load_manifest(checkpoint)
    if cfg.get("max_len") and length > cfg["max_len"]:
        raise error("E0703", f"--length {length} exceeds the max-len {cfg['max_len']} the model was compiled for",
                    None, "the model's constants and promise hold up to its max-len: draw shorter sequences")
    if program is not None:
        check_program(cfg, program, checkpoint)
    rec = cfg["program"]["input"]
    dom = rec["domain"] and Domain(rec["domain"]["kind"], tuple(_num(v) for v in rec["domain"]["values"]))
    spec = program.input if program is not None else InputSpec(rec["name"], int(rec["dim"]), dom)
    declared = program.generator if program is not None else recorded_generator(cfg)
    chosen = choose(declared, generator, generator_args)
    if chosen.name == "domain" and spec.domain is None:
        raise error("E1003", "the program's input has no domain to draw a dataset from", None,
                    "declare one (`input x[d] in {0..9}` or `in [lo, hi]`), or draw with an input generator "
                    "(`generator NAME(...)` in the program, or --generator)")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    shards, descriptions = [], {}
    show = sys.stderr.isatty() if progress is None else progress
    count = -(-n // shard_size)
    for i in range(count):
        rows = min(shard_size, n - i * shard_size)
        x = chosen.draw(np.random.default_rng([seed, i]), rows, length, spec)
        tr = trace(module, x, manifest)
        tensors = {"inputs": x, "output": tr.output}
        tensors.update({f"layer/{k}": v for k, v in tr.layers.items() if k != "input"})
        tensors.update({f"decoded/{k}": v for k, v in tr.named().items()})
        if program is not None:
            ref = interpret(program.graph, x, trace=True)
            tensors["reference/output"] = ref.output
            tensors.update({f"reference/{k}": v for k, v in ref.named(program.graph).items()})
        name = f"shard-{i:05d}.safetensors"
        save_file({k: np.ascontiguousarray(v, dtype=np.float64) for k, v in tensors.items()}, str(out / name))
        shards.append({"file": name, "sequences": rows})
        descriptions = {k: {"shape": ["sequences", length, int(v.shape[-1])], "meaning": _meaning(k, chosen.name)}
                        for k, v in tensors.items()}
        if show:
            print(f"\rshard {i + 1}/{count}", end="", file=sys.stderr, flush=True)
    if show:
        print(file=sys.stderr)
    sheet = {"format": "lsrl-dataset", "format_version": 1, "program": cfg["program"], "backend": cfg["backend"],
             "dtype": cfg["dtype"], "max_len": cfg.get("max_len"), "promise": cfg.get("promise"), "seed": seed,
             "sequences": n, "length": length, "shard_size": shard_size, "shards": shards,
             "tensors": descriptions, "layers": manifest["layers"], "generator": chosen.to_json(),
             "sampling": f"each shard i draws its inputs from numpy.random.default_rng([seed, i]) with the input "
                         f"generator `{chosen.name}` (lsrl.interpretability.generators)"
                         + (", uniformly from the input domain" if chosen.name == "domain" else "")}
    (out / DATASHEET).write_text(json.dumps(sheet, indent=2, sort_keys=True) + "\n")
    return sheet


def _meaning(key: str, generator: str) -> str:
    kind, _, name = key.partition("/")
    return {"inputs": f"the input sequences (generator `{generator}`)", "output": "the model's output",
            "layer": f"activations of layer {name} (a forward hook's view; units labelled in the manifest)",
            "decoded": f"`{name}` decoded from the model's units (placement decode + offset)",
            "reference": f"the interpreter's {'output' if name == 'output' else f'value of `{name}`'}"}[kind]


def _num(v):
    from fractions import Fraction

    return Fraction(v) if isinstance(v, str) else v
