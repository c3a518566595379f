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

`basis="unimodular"` or `"orthogonal"` first changes the basis of the linear coordinates (`rebase`), where a
backend has them (`lsrl.backends.base.linear_basis`: lrnn's stage outputs, each stage its own basis; the
residual stream of mamba and hawk): units' = M units, every writer multiplied by M on the left, every reader
by M^-1 on the right, every placement's decode by M^-1 (decode' = decode @ M^-1[start:stop], offsets kept).

- unimodular: M and M^-1 integer matrices (random 2x2 blocks of determinant 1 on a butterfly of pairs, then a
  signed permutation). Where the compiled model is integer arithmetic that its analysis proves exact, the
  rebased one is too as long as every sum the change touches stays within the dtype's exact range, which is
  checked (`BasisChange.check`); the model is refused (E0707) where it cannot be kept exact. The promise is
  then the compiled model's (lrnn: certified with the new sums' bound).
- orthogonal: M a random orthogonal matrix (floats): exactness is lost. The promise is restated as bounded,
  abs_bound = the compiled model's + SAFETY x the largest error measured against the interpreter on random
  and edge-case sequences of length max_len: a measured bound, not a proven one, and the promise says so.

On the residual stream the embedding is not touched (nor, then, a Hugging Face export's): the first half-layer
still reads it as it was and writes M r_1 - r_0, through one added pass-through channel per input coordinate;
mamba's constant coordinate keeps its row and column of M (the HF export's RMSNorm relies on it).
Interventions (`lsrl.interpretability.intervene`) move a placement's units by the minimum-norm preimage of
its decode, which leaves the layer's other values alone where the decodes' rows are orthogonal: after an
orthogonal change of basis, not after a unimodular one.
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass, field, replace
from fractions import Fraction

import numpy as np
import torch

from lsrl.cached import cached
from lsrl.compiling import Compiled
from lsrl.ir.rational import RatArray

BASES = ("none", "unimodular", "orthogonal")
SAFETY = 4.0  # orthogonal: the restated bound is this many times the largest error measured
_TRIES = 64  # draws of a unimodular matrix with no zero entry
_SLACK = 1 - 1e-9  # as lsrl.guarantee.certify: the sums are bounded in float64
_PROBE = "<basis>"  # an identity read-out of the last layer, for its values' errors (no probe name has "<")

_LRNN_ROWS = {"state": ("A", "B", "bias", "init"), "mlp": ("C", "c", "D"), "gate": ("P", "Q")}
_LRNN_COLS = {"state": ("A", "B"), "mlp": ("C", "E"), "gate": ("P", "U", "V")}  # A's are its own rows


def obfuscate(compiled, seed: int = 0, scale: bool = True, dead: int = 1, basis: str = "none",
              rounds: int | None = None, samples: int = 32):
    """The same function in another unit basis (module docstring). `basis`: "none" (permutations, scalings and
    dead units only), "unimodular" or "orthogonal" (a change of basis of the linear coordinates first, see
    `rebase`; `rounds` for unimodular, `samples` sequences of length max_len measure the orthogonal one's
    error)."""
    if basis != "none":
        compiled = rebase(compiled, basis, seed, rounds)
    out = _obfuscate(compiled, seed, scale, dead)
    if basis == "orthogonal":  # measured on the final module (a permutation reorders its inexact sums)
        out.rebase.measure(out, samples, seed)
    return out


def _obfuscate(compiled, seed: int, scale: bool, dead: int):
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
    from lsrl.guarantee.promise import BOUNDED, OutputPromise

    class Noisy(type(compiled)):  # a rebased model's fields too
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


# ---------------------------------------------------------------------------------------------- change of basis


class _Inexact(Exception):
    """A float64 product that the change of basis needs exact is not provably so."""


@dataclass
class BasisChange:
    """A change of basis of a compiled model's linear coordinates (`rebase`): per basis (M, M^-1) over the
    compiled model's own (logical) coordinates, which basis each stage's units take, the model before it
    (`source`: its analysis, its promise) and the rebased module in float64 (for the exactness checks)."""

    kind: str  # unimodular | orthogonal
    what: str  # the backend's linear_basis, its first clause (what the basis is of)
    bases: list[tuple[np.ndarray, np.ndarray]]
    layers: list[int]
    source: Compiled
    module64: torch.nn.Module
    checks: dict[str, tuple[float, str]] = field(default_factory=dict)  # dtype -> (largest sum / quantum, why not)
    measured: dict | None = None  # orthogonal: errors and scales per output, samples, length, seed, dtype

    def check(self, dtype: str) -> tuple[float, str]:
        """unimodular: the largest |partial sum| (over its quantum) of the sums the change touches, or (inf, why)
        where they are not integer arithmetic the compiled model's analysis proves exact in `dtype`."""
        if dtype not in self.checks:
            from lsrl.backends import get_backend

            backend = get_backend(self.source.options.backend)
            contexts = _contexts(self.source, dtype) if hasattr(backend, "stage_io") else None
            sums, why = backend.basis_sums(self.source, self.module64, self.bases, contexts)
            if not why and not math.isfinite(sums):
                why = "range analysis cannot bound a sum it touches"
            self.checks[dtype] = (sums, why)
        return self.checks[dtype]

    def exact_in(self, dtype: str) -> tuple[bool, str]:
        """Whether the rebased model's arithmetic is provably exact in `dtype`, and if not, why."""
        from lsrl.compiling import DTYPES

        if self.kind != "unimodular":
            return False, "a real (orthogonal) change of basis is not integer arithmetic"
        sums, why = self.check(dtype)
        limit = 2.0 / torch.finfo(DTYPES[dtype]).eps
        if why:
            return False, why
        if sums > limit * _SLACK:
            return False, (f"a sum it touches reaches {sums:.6g} times its quantum, beyond the {limit:.6g} that "
                           f"{dtype} holds exactly")
        if any(not torch.equal(t.to(DTYPES[dtype]).double(), t) for t in self.module64.state_dict().values()
               if t.is_floating_point()):
            return False, f"a rebased weight is not representable in {dtype}"
        return True, ""

    def certificate(self):
        """The integer certificate restated for the rebased module (lrnn: the sums `check` bounds), or None where
        the compiled model's has no finite sum bound to restate (mamba, hawk: their exactness is the analysis's)."""
        from lsrl.guarantee.certify import Certificate

        if self.kind != "unimodular":
            return Certificate(None, "a real (orthogonal) change of basis is not integer arithmetic")
        if not math.isfinite(self.source.certificate.bound or math.inf):
            return None
        sums, why = self.check(self.source.options.dtype)
        return Certificate(None, why) if why else Certificate(sums)

    def entries(self) -> tuple[float, float]:
        """The largest |entry| of M and of M^-1 over the bases."""
        return (max((float(np.abs(M).max(initial=0.0)) for M, _ in self.bases), default=0.0),
                max((float(np.abs(Mi).max(initial=0.0)) for _, Mi in self.bases), default=0.0))

    def restate(self, promise, dtype: str):
        """The promise of the rebased model in `dtype` (`promise`: as the compiled model's analysis states it)."""
        from lsrl.guarantee.promise import BOUNDED, OutputPromise, weakest

        def none(why: str):
            outs = {k: OutputPromise(BOUNDED, math.inf, o.reference_bound, o.integer)
                    for k, o in promise.outputs.items()}
            return replace(promise, outputs=outs, certified="", note=f"change of basis ({self.kind}): {why}: no bound")

        if self.kind == "unimodular":
            ok, why = self.exact_in(dtype)
            if not ok:
                return none(f"not exact in {dtype}: {why}")
            a, b = self.entries()
            note = (f"{promise.note}; change of basis: integer unimodular M (|M| <= {a:g}, |M^-1| <= {b:g}) on "
                    f"{self.what}: every sum it touches is integer arithmetic within {self.check(dtype)[0]:.6g} "
                    f"of its quantum, exact in {dtype}, so the compiled model's promise stands")
            return replace(promise, note=note)
        m = self.measured
        if m is None or m["dtype"] != dtype:
            return none(f"its error was not measured in {dtype}")
        base = self.source.promise(dtype)
        u = torch.finfo(_dtype(dtype)).eps / 2
        outs = {k: OutputPromise(weakest([o.exactness, BOUNDED]),
                                 o.abs_bound + SAFETY * max(m["errors"][k], u * m["scales"][k]),
                                 o.reference_bound, o.integer) for k, o in base.outputs.items()}
        note = (f"{base.note}; change of basis: random orthogonal M (float) on {self.what}: not exact; abs_bound is "
                f"the compiled model's + {SAFETY:g} x the largest error measured against the interpreter on "
                f"{m['samples']} sequences of length {m['length']} (seed {m['seed']}): measured, not proven")
        return replace(base, outputs=outs, certified="", note=note)

    def measure(self, compiled, samples: int, seed: int) -> None:
        """orthogonal: the rebased (and permuted) model's largest error against the interpreter, per output,
        on `samples` random sequences and the edge cases, of length max_len (lsrl.verifying.compare)."""
        from lsrl.guarantee.promise import OutputPromise
        from lsrl.verifying import compare

        dtype = compiled.options.dtype
        p = self.source.promise(dtype)
        loose = replace(p, outputs={k: OutputPromise(o.exactness, math.inf, o.reference_bound, o.integer)
                                    for k, o in p.outputs.items()})
        length = compiled.options.length_limit
        r = compare(compiled.program, compiled.module, loose, samples, length, seed)
        self.measured = {"errors": dict(r.errors), "scales": dict(r.scales), "samples": r.sequences,
                         "length": length, "seed": seed, "dtype": dtype}

    def summary(self, dtype: str) -> str:
        """One line for `lsrl obfuscate`."""
        if self.kind == "unimodular":
            a, b = self.entries()
            limit = 2.0 / torch.finfo(_dtype(dtype)).eps
            return (f"change of basis: unimodular (integer M, |M| <= {a:g}, |M^-1| <= {b:g}) on {self.what}; "
                    f"exact in {dtype}: every sum it touches stays within {self.check(dtype)[0]:.6g} of its quantum "
                    f"(<= {limit:.6g})")
        m = self.measured or {"errors": {"output": math.nan}, "samples": 0, "length": 0}
        return (f"change of basis: random orthogonal (float) on {self.what}; not exact: max abs err "
                f"{m['errors']['output']:.3g} measured on {m['samples']} sequences of length {m['length']}; the "
                f"promise is restated as measured, not proven")


@dataclass
class Rebased(Compiled):
    """A Compiled whose linear coordinates changed basis (`rebase`): its promise is restated (BasisChange)."""

    rebase: BasisChange | None = None

    @cached
    def certificate(self):
        from lsrl.guarantee.certify import certify

        restated = self.rebase.certificate() if self.rebase is not None else None
        return restated if restated is not None else certify(self)

    def promise(self, dtype: str | None = None):
        dtype = dtype or self.options.dtype
        p = super().promise(dtype)
        return self.rebase.restate(p, dtype) if self.rebase is not None else p


def _dtype(name: str) -> torch.dtype:
    from lsrl.compiling import DTYPES

    return DTYPES[name]


def rebase(compiled, kind: str, seed: int = 0, rounds: int | None = None) -> Rebased:
    """A Compiled computing the same function with its linear coordinates in a random basis of `kind`
    ("unimodular" or "orthogonal"; module docstring); its placements' decodes follow (decode @ M^-1). Refused
    (E0707) where the backend has no linear coordinates, and for unimodular where the rebased model's
    arithmetic cannot be proven exact in the compiled dtype."""
    from lsrl.backends import Placement, get_backend
    from lsrl.backends.base import linear_basis
    from lsrl.diagnostics import error

    if kind not in BASES[1:]:
        raise ValueError(f"unknown basis {kind!r}: one of {', '.join(BASES)}")
    backend = get_backend(compiled.options.backend)
    what = linear_basis(backend)
    if what is None:
        raise error("E0707", f"no change of basis applies to the {backend.name} backend: every hidden unit passes "
                    "through a ReLU or a gate (only permutations and positive scalings preserve the function)",
                    None, "obfuscate it without a basis change, or compile for lrnn, mamba or hawk")
    rng = np.random.default_rng([seed, 14])
    config = copy.deepcopy(compiled.emitted.config)
    specs, layers = backend.basis_layers(config)
    bases = [_basis(kind, width, cols, rows, rng, rounds) for width, cols, rows in specs]
    module64 = copy.deepcopy(compiled.module).double()
    dtype = compiled.options.dtype
    refuse = ("use float64 (a wider exact range), fewer --basis-rounds, a smaller --max-len, or --basis orthogonal "
              "(inexact, with a measured bound)")
    x_lo = None
    if hasattr(backend, "input_columns"):  # its first half-layer passes its input on (input channels' shifts)
        from lsrl.backends.channels import stream_ranges

        x_lo = stream_ranges(compiled.stack.input_layout, compiled.facts, "the change of basis")[0]
    try:
        module64, config = backend.rebased(module64, config, bases, _exact_mul if kind == "unimodular" else _mul,
                                           x_lo)
    except _Inexact:
        raise error("E0707", f"--basis unimodular cannot keep this {backend.name} model exact: its rebased weights "
                    "overflow float64's exact integers", None, refuse) from None
    names = compiled.emitted.stage_layers(backend.prefix, len(layers))
    which = dict(zip(names, layers, strict=True))
    places = [_rebased_place(p, bases[which[p.layer]][1], Placement) if p.layer in which else p
              for p in compiled.emitted.placements]
    module = copy.deepcopy(module64).to(next(compiled.module.parameters()).dtype)
    emitted = replace(compiled.emitted, module=module, config=config, placements=places)
    fields = {f: getattr(compiled, f) for f in Compiled.__dataclass_fields__}
    change = BasisChange(kind, what.split(",", 1)[0], bases, layers, compiled, module64)
    if kind == "unimodular":
        ok, why = change.exact_in(dtype)
        if not ok:
            raise error("E0707", f"--basis unimodular cannot keep this {backend.name} model exact in {dtype}: {why}",
                        None, refuse)
    return Rebased(**{**fields, "emitted": emitted}, rebase=change)


def _basis(kind: str, width: int, cols, rows, rng, rounds) -> tuple[np.ndarray, np.ndarray]:
    """(M, M^-1) over `width` coordinates: the columns `cols` unit vectors (the embedding's), the rows `rows`
    too (the constant's); the free coordinates mixed by a unimodular or orthogonal N, and each pinned column's
    row (if not pinned) sheared by one mixed free coordinate, r'_i = r_i + s r'_j (M^-1 undoes it)."""
    free = [j for j in range(width) if j not in set(cols)]
    M, Mi = np.eye(width), np.eye(width)
    if not free:
        return M, Mi
    N, Ni = _unimodular(len(free), rng, rounds) if kind == "unimodular" else _orthogonal(len(free), rng)
    M[np.ix_(free, free)], Mi[np.ix_(free, free)] = N, Ni
    for i in cols:
        if i not in rows:
            j, s = int(rng.integers(len(free))), float(rng.choice([-1, 1]))
            M[i, free] = s * N[j]
            Mi[i, free[j]] = -s
    return M, Mi


def _unimodular(n: int, rng, rounds: int | None) -> tuple[np.ndarray, np.ndarray]:
    """A random integer N with an integer inverse. Over a random order of the coordinates, the first m (the
    largest power of two <= n) go through `rounds` rounds of a butterfly (default log2 m: then every one of
    them mixes every other), each pair mixed by a 2x2 block of determinant 1 ([[1, s], [s, 2]] or
    [[2, s], [s, 1]], s = +-1: row sums at most 3 per round, in N and its inverse alike); each of the other
    n - m is paired with one of the first m before and after the butterfly (so it mixes, and is mixed into,
    all of them); then a random signed permutation. Drawn again (up to _TRIES times) while an entry is 0."""
    for _ in range(_TRIES):  # cancellations can leave zero entries: draw again for one that mixes every unit
        N, Ni = _unimodular_draw(n, rng, rounds)
        if (N != 0).all():
            break
    return N, Ni


def _unimodular_draw(n: int, rng, rounds: int | None) -> tuple[np.ndarray, np.ndarray]:
    order = rng.permutation(n)
    m = 1 << (n.bit_length() - 1) if n else 0
    bits = m.bit_length() - 1
    rounds = bits if rounds is None else rounds
    N, Ni = np.eye(n, dtype=np.int64), np.eye(n, dtype=np.int64)

    def mix(pairs) -> None:
        nonlocal N, Ni
        B, Bi = np.eye(n, dtype=np.int64), np.eye(n, dtype=np.int64)
        for i, j in pairs:
            s = int(rng.choice([-1, 1]))
            blk = [[1, s], [s, 2]] if rng.integers(2) else [[2, s], [s, 1]]
            ij = np.ix_([order[i], order[j]], [order[i], order[j]])
            B[ij], Bi[ij] = blk, [[blk[1][1], -s], [-s, blk[0][0]]]
        N, Ni = B @ N, Ni @ Bi

    rest = [(k - m, k) for k in range(m, n)]
    if rest:
        mix(rest)
    for r in range(rounds if bits else 0):
        bit = 1 << (r % bits)
        mix([(i, i | bit) for i in range(m) if not i & bit])
    if rest:
        mix(rest)
    perm, signs = rng.permutation(n), rng.choice([-1, 1], n)
    N, Ni = signs[:, None] * N[perm], Ni[:, perm] * signs[None, :]
    return N.astype(np.float64), Ni.astype(np.float64)


def _orthogonal(n: int, rng) -> tuple[np.ndarray, np.ndarray]:
    """A random (Haar) orthogonal Q and its transpose."""
    q, r = np.linalg.qr(rng.standard_normal((n, n)))
    q = q * np.where(np.diag(r) < 0, -1.0, 1.0)[None, :]
    return q, q.T.copy()


def _mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    return a @ b


def _exact_mul(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a @ b in float64, proven exact: every partial sum of entry (i, j) is a multiple of (the lowest set bit
    of row i of a) x (that of column j of b) and at most (|a| |b|)[i, j] (else _Inexact)."""
    from lsrl.backends.channel_errors import lowest_bit

    qa = np.where(a != 0, lowest_bit(a), np.inf).min(axis=1, initial=np.inf)
    qb = np.where(b != 0, lowest_bit(b), np.inf).min(axis=0, initial=np.inf)
    bound = np.abs(a) @ np.abs(b)
    with np.errstate(invalid="ignore"):
        if np.any((bound > 0) & ~(bound <= 2.0**53 * qa[:, None] * qb[None, :])):
            raise _Inexact
    return a @ b


def _rebased_place(place, Mi: np.ndarray, cls):
    """The placement over the rebased units: value = decode @ units[start:stop] + offset with units = M^-1
    units', so decode' = decode @ M^-1[start:stop] over the units' it reads (exact: M^-1's floats as they are)."""
    rows = np.array([[Fraction(float(v)) for v in row] for row in Mi[place.start:place.stop]], dtype=object)
    rows = rows.reshape(place.stop - place.start, Mi.shape[1])
    dec = place.decode.to_fractions() @ rows if rows.size else np.zeros((place.decode.shape[0], 0), dtype=object)
    dec = np.asarray(dec, dtype=object).reshape(place.decode.shape[0], Mi.shape[1])
    cols = np.flatnonzero((dec != 0).any(axis=0))
    a, b = (int(cols[0]), int(cols[-1]) + 1) if len(cols) else (0, 0)
    return cls(place.node, place.layer, a, b, RatArray.of(dec[:, a:b]), place.offset)


def _contexts(compiled, dtype: str):
    """The compiled model's error analysis in `dtype` (lsrl.guarantee.propagate, as its promise runs it), per
    stage: the Context the backend was given (input bounds; which inputs are exact integers) and its
    StageErrors; and per value of the last layer whether it is an exact integer (an identity read-out's error
    is 0)."""
    from lsrl.backends import get_backend
    from lsrl.guarantee.policy import _x_bound
    from lsrl.guarantee.propagate import propagate
    from lsrl.ir.coeffs import Coeffs
    from lsrl.lowering.bounds import layout_bounds
    from lsrl.lowering.stack import Readout

    backend = get_backend(compiled.options.backend)
    xb, xi, xe = _x_bound(compiled.program, _dtype(dtype))
    ctxs, errs = {}, {}

    def stage_errors(i, st, ctx):
        se = backend.stage_errors(compiled.emitted, i, st, ctx)
        ctxs[i], errs[i] = ctx, se  # a state stage is asked twice: the second (its own error included) stands
        return se

    stack = compiled.stack
    last = stack.stages[-1].out if stack.stages else stack.input_layout
    eye = Readout(Coeffs.from_rat(RatArray.eye(last.width)), Coeffs.from_rat(RatArray.zeros(last.width)))
    out = propagate(replace(stack, probes=(*stack.probes, (_PROBE, eye))), compiled.facts, xb, xi, xe,
                    compiled.options.length_limit, torch.finfo(_dtype(dtype)).eps / 2, stage_errors)
    ints = layout_bounds(last, compiled.facts.integers).astype(bool) & (out.bounds[_PROBE] == 0)
    n = len(stack.stages)
    return [ctxs[i] for i in range(n)], [errs[i] for i in range(n)], ints
