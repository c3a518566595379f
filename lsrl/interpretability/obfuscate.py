"""Obfuscation: function-preserving changes of a compiled model's weights, with the ground truth kept in sync.

`obfuscate(compiled, seed)` returns a new Compiled whose module computes the same function (bit for bit
where the scalings are powers of two, as here) but whose units sit in another basis:

- every layer's units are permuted (a torch RNN/GRU/LSTM layer: its rows in each gate block and its
  recurrent columns; an lrnn stage: its output rows, its state matrix on both sides), and the next layer
  (or the read-out heads) reads the permuted columns;
- `rnn` ReLU units are scaled by positive powers of two (relu(a z) = a relu(z) for a > 0; the readers and
  the unit's own recurrent column divide by a);
- `dead` extra units per layer with no weights in or out (they stay 0 on every backend).

The placements (and `rnn`'s unit columns) are rewritten with the same permutation and scalings, so the
manifest of the obfuscated checkpoint still decodes every value exactly, and its promise is the original's.
"""

from __future__ import annotations

import copy
import math
from dataclasses import replace
from fractions import Fraction

import numpy as np
import torch

from lsrl.ir.rational import RatArray

_LRNN_ROWS = {"state": ("A", "B", "bias", "init"), "mlp": ("C", "c", "D"), "gate": ("P", "Q")}
_LRNN_COLS = {"state": ("A", "B"), "mlp": ("C", "E"), "gate": ("P", "U", "V")}  # A's are its own rows


def obfuscate(compiled, seed: int = 0, scale: bool = True, dead: int = 1):
    from lsrl.backends import get_backend

    rng = np.random.default_rng(seed)
    backend = get_backend(compiled.options.backend)
    module = copy.deepcopy(compiled.module)
    config = copy.deepcopy(compiled.emitted.config)
    layers = getattr(module, backend.prefix)
    if hasattr(backend, "permuted"):
        module, config, maps = _obfuscate_stream(backend, module, config, rng, dead)
        return _with_module(compiled, module, config, maps)
    torch_layers = bool(len(layers)) and isinstance(layers[0], torch.nn.RNNBase)
    dead = dead if torch_layers else 0  # an lrnn stage's width is its stack stage's
    maps = []  # per layer: (new index of each old unit, scale of each old unit, new width)
    prev = None
    with torch.no_grad():
        for layer in layers:
            width = layer.hidden_size if torch_layers else _lrnn_width(layer)
            perm = rng.permutation(width + dead)[:width]  # old unit j -> new index perm[j]; the rest are dead
            scales = (2.0 ** rng.integers(-3, 4, width) if scale and backend.name == "rnn" else np.ones(width))
            if torch_layers:
                _permute_torch(layer, perm, scales, width + dead, prev)
            else:
                _permute_lrnn(layer, perm, prev)
            maps.append((perm, scales, width + dead))
            prev = (perm, scales, width + dead)
        if prev is not None:
            for head in [module.readout, *module.probe_heads]:
                head.weight.data = _read_columns(head.weight.data, *prev)
    if torch_layers:
        config["hiddens"] = [m[2] for m in maps]
        config["inputs"] = ([config["inputs"][0]] + config["hiddens"])[:len(maps)] if maps else config["inputs"]
        config["readout_in"] = maps[-1][2] if maps else config["readout_in"]
        rebuilt = backend.build_module(config).to(next(module.parameters()).dtype)
        rebuilt.load_state_dict(module.state_dict())
        module = rebuilt
    return _with_module(compiled, module, config, maps)


def _with_module(compiled, module, config, maps):
    """The Compiled carrying the obfuscated module, its placements (and unit columns) moved by `maps`."""
    from lsrl.backends import Placement, get_backend

    names = compiled.emitted.stage_layers(get_backend(compiled.options.backend).prefix, len(maps))
    index = dict(zip(names, maps, strict=True))
    places = [_move(p, index[p.layer], Placement) if p.layer in index else p for p in compiled.emitted.placements]
    columns = compiled.emitted.unit_columns
    constants = dict(compiled.emitted.constants)
    if columns is not None:  # dead units (-2) hold 0
        columns = [_moved_list(cols, perm, n, -2) for cols, (perm, _, n) in zip(columns, maps, strict=True)]
        constants["unit_scales"] = [_moved_list(list(s), perm, n, 1.0) for perm, s, n in maps]
    emitted = replace(compiled.emitted, module=module, config=config, placements=places, unit_columns=columns,
                      constants=constants)
    out = replace(compiled, emitted=emitted)
    out.__dict__.pop("certificate", None)  # cached on the original; the new module is checked afresh
    return out


def _obfuscate_stream(backend, module, config, rng, dead: int):
    """A residual-stream backend (mamba, hawk): one permutation of the stream (every layer shares it: the
    blocks add into it) with `dead` extra coordinates; the backend permutes its layers' channels too."""
    H = config["hidden"]
    width = H + dead
    perm = rng.permutation(width)[:H]  # logical coordinate j -> physical perm[j]
    stream = [int(perm[j]) for j in (config.get("stream") or range(H))]
    new_cfg = {**config, "hidden": width, "stream": stream, "hiddens": [width] * len(config["hiddens"]),
               "readout_in": width}
    p = torch.as_tensor(perm)
    with torch.no_grad():
        rebuilt, new_cfg = backend.permuted(module, new_cfg, p, rng)
        for old, new in zip([module.readout, *module.probe_heads], [rebuilt.readout, *rebuilt.probe_heads],
                            strict=True):
            new.weight.zero_()
            new.weight[:, p] = old.weight
            new.bias.copy_(old.bias)
    return rebuilt, new_cfg, [(perm, np.ones(H), width)] * len(config["hiddens"])


def with_noise(compiled, sigma: float, seed: int = 0):
    """A Compiled carrying `add_noise`'s module, whose promise says it holds no bound any more (so a saved
    checkpoint does not claim one)."""
    from lsrl.compiling import Compiled
    from lsrl.guarantee.promise import BOUNDED, OutputPromise

    class Noisy(Compiled):
        def promise(self, dtype=None):
            p = super().promise(dtype)
            none = {k: OutputPromise(BOUNDED, math.inf, o.reference_bound, o.integer) for k, o in p.outputs.items()}
            return replace(p, outputs=none, certified="", note=f"weights carry relative noise {sigma:g}: no bound")

    em = compiled.emitted
    emitted = replace(em, module=add_noise(compiled, sigma, seed))
    fields = {f: getattr(compiled, f) for f in compiled.__dataclass_fields__}
    return Noisy(**{**fields, "emitted": emitted})


def add_noise(compiled, sigma: float, seed: int = 0):
    """A copy of the module whose layer weights carry multiplicative Gaussian noise, w (1 + sigma N(0, 1)):
    relative to each entry, since entries span many orders of magnitude (a gated unit's 1/eps), and zeros
    stay zero (the sparsity pattern a circuit-discovery method looks for is kept). Not function-preserving:
    measure the degradation against the interpreter; the promise no longer holds."""
    from lsrl.backends import get_backend

    gen = torch.Generator().manual_seed(seed)
    module = copy.deepcopy(compiled.module)
    with torch.no_grad():
        for p in getattr(module, get_backend(compiled.options.backend).prefix).parameters():
            noise = torch.randn(p.shape, generator=gen, dtype=torch.float64).to(p.dtype)
            p.mul_(1 + sigma * noise)
    return module


def _lrnn_width(stage) -> int:
    return getattr(stage, _LRNN_ROWS[stage.kind][0]).shape[0]


def _read_columns(w: torch.Tensor, perm, scales, width) -> torch.Tensor:
    """A reader's weight over the layer's old units, moved to the new ones (divided by the unit scales)."""
    out = w.new_zeros(w.shape[0], width)
    out[:, torch.as_tensor(perm)] = w / torch.as_tensor(scales, dtype=w.dtype)
    return out


def _permute_torch(layer, perm, scales, width, prev) -> None:
    """Rows of every gate block, recurrent columns, and the input columns the previous layer moved."""
    h = layer.hidden_size
    gates = layer.weight_ih_l0.shape[0] // h
    p = torch.as_tensor(perm)
    s = torch.as_tensor(scales, dtype=layer.weight_ih_l0.dtype)
    w_ih = layer.weight_ih_l0.data
    if prev is not None:
        w_ih = _read_columns(w_ih, *prev)
    new_ih = w_ih.new_zeros(gates * width, w_ih.shape[1])
    new_hh = w_ih.new_zeros(gates * width, width)
    new_b = [w_ih.new_zeros(gates * width), w_ih.new_zeros(gates * width)]
    hh = _read_columns(layer.weight_hh_l0.data, perm, scales, width)
    for g in range(gates):
        rows = slice(g * h, (g + 1) * h)
        # the scale multiplies the ReLU's whole pre-activation (rnn only: gated layers keep scales 1)
        new_ih[g * width + p] = w_ih[rows] * s[:, None]
        new_hh[g * width + p] = hh[rows] * s[:, None]
        for b, old in zip(new_b, (layer.bias_ih_l0.data, layer.bias_hh_l0.data), strict=True):
            b[g * width + p] = old[rows] * s
    for name, value in (("weight_ih_l0", new_ih), ("weight_hh_l0", new_hh), ("bias_ih_l0", new_b[0]),
                        ("bias_hh_l0", new_b[1])):
        getattr(layer, name).data = value


def _permute_lrnn(stage, perm, prev) -> None:
    p = torch.as_tensor(perm)
    for name in _LRNN_COLS[stage.kind]:
        w = getattr(stage, name).data
        if name == "A":
            w = w[:, torch.argsort(p)]  # the state's own columns: the new unit k is old unit argsort(p)[k]
        elif prev is not None:
            w = _read_columns(w, *prev)
        getattr(stage, name).data = w
    for name in _LRNN_ROWS[stage.kind]:
        w = getattr(stage, name).data
        new = w.new_zeros(w.shape)
        new[p] = w
        getattr(stage, name).data = new


def _move(place, mapping, cls):
    perm, scales, _ = mapping
    cols = perm[place.start:place.stop]
    start, stop = int(cols.min()), int(cols.max()) + 1
    dec = place.decode.to_fractions()
    new = np.zeros((dec.shape[0], stop - start), dtype=object)
    new[:] = 0
    for j, c in enumerate(cols):
        new[:, c - start] = [v / Fraction(scales[place.start + j]) for v in dec[:, j]]
    return cls(place.node, place.layer, start, stop, RatArray.of(new), place.offset)


def _moved_list(values: list, perm, width: int, fill) -> list:
    """A per-unit list moved to the new unit order (dead units: `fill`)."""
    out = [fill] * width
    for j, v in enumerate(values):
        out[perm[j]] = v
    return out
