"""Traces: every layer's activations of a compiled model, and what each unit holds.

`trace(model, x)` runs the model once with a forward hook on every layer (so any torch tool attached
there sees the same tensors) and labels every unit from the manifest's placements: a unit of layer L
holds `coefficient x` a component of a program variable's value when that placement's decode row gives
it a nonzero weight (`value = decode @ units[start:stop] + offset`). Decoding each placement gives the
variables' values as the model computes them, step by step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np


@dataclass(frozen=True)
class UnitLabel:
    """Unit `unit` of layer `layer` enters component `component` of node `node` with weight `coefficient`."""

    layer: str
    unit: int
    node: int
    variable: str | None  # the program's name for the value (None: an unnamed intermediate)
    component: int
    coefficient: float
    span: dict | None  # {file, line, col, end_line, end_col} of the value in the source


@dataclass
class Trace:
    layers: dict[str, np.ndarray]  # layer name ("input", "{prefix}.{i}") -> activations (batch, time, width)
    units: dict[str, list[list[UnitLabel]]]  # layer -> per unit, what it holds (often one thing, maybe more)
    values: dict[int, np.ndarray]  # node id -> its value decoded from its first placement (batch, time, dim)
    labels: dict[int, str | None]  # node id -> variable name
    output: np.ndarray
    probes: dict[str, np.ndarray] = field(default_factory=dict)

    def named(self) -> dict[str, np.ndarray]:
        """Variable name -> decoded value (the first node bound to the name that has a placement)."""
        out: dict[str, np.ndarray] = {}
        for node, value in self.values.items():
            name = self.labels.get(node)
            if name and name not in out:
                out[name] = value
        return out


def trace(target, x, manifest: dict | None = None) -> Trace:
    """Trace a compiled model on inputs x (batch, time, dim) or (time, dim). `target` is a checkpoint
    directory, a `lsrl.compiling.Compiled`, or a module (then pass its `manifest`)."""
    import torch

    from lsrl.runtime.checkpoint import build_manifest, load, load_manifest
    from lsrl.runtime.manifest import entries, placement_decode

    if isinstance(target, str | Path):
        module, manifest = load(target), load_manifest(target)
    elif hasattr(target, "emitted"):
        module, manifest = target.module, manifest or build_manifest(target)
    else:
        module = target
        if manifest is None:
            raise TypeError("tracing a bare module needs its manifest")
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 2:
        x = x[None]
    acts: dict[str, np.ndarray] = {"input": x}
    hooks = [module.get_submodule(la["name"]).register_forward_hook(_recorder(acts, la["name"]))
             for la in manifest["layers"] if la["name"] != "input"]
    try:
        dtype = next(module.parameters()).dtype
        with torch.no_grad():
            y, probes = module(torch.tensor(x, dtype=dtype), probes=True)
    finally:
        for h in hooks:
            h.remove()
    units = {la["name"]: [[] for _ in range(acts[la["name"]].shape[-1])] for la in manifest["layers"]
             if la["name"] in acts}
    values, labels = {}, {}
    for e in entries(manifest):
        labels.setdefault(e["node"], e["label"])
        for p in e["placements"]:
            decode, offset = placement_decode(p)
            if e["node"] not in values:
                values[e["node"]] = acts[p["layer"]][..., p["start"]:p["stop"]] @ decode.T + offset
            for comp, j in zip(*np.nonzero(decode), strict=True):
                label = UnitLabel(p["layer"], p["start"] + int(j), e["node"], e["label"], int(comp),
                                  float(decode[comp, j]), e["span"])
                if label not in units[p["layer"]][p["start"] + int(j)]:
                    units[p["layer"]][p["start"] + int(j)].append(label)
    return Trace(acts, units, values, labels, y.double().numpy(),
                 {k: v.double().numpy() for k, v in probes.items()})


def _recorder(acts: dict, name: str):
    def hook(module, inputs, output):
        out = output[0] if isinstance(output, tuple) else output  # torch RNN layers return (output, h_n)
        acts[name] = out.detach().double().numpy()

    return hook
