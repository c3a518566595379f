"""Checkpoints: a compiled model as a directory of plain, reproducible files, and loading it back.

A checkpoint directory holds three files:

``model.safetensors``
    The module's ``state_dict`` (contiguous tensors in the compiled dtype, parameter names exactly as the
    backend's module has them, e.g. ``stages.0.A`` or ``rnns.1.weight_hh_l0``). The safetensors metadata is
    ``{"format": "pt", "lsrl_format": "lsrl-checkpoint", "lsrl_format_version": "1", "lsrl_version": ...,
    "backend": ..., "dtype": ...}``; the header is written with sorted keys so the bytes are reproducible.

``config.json``
    Everything needed to rebuild and check the module: ``format``/``format_version``, ``lsrl_version``,
    ``backend``, ``module_config`` (the backend's ``Emitted.config``; ``get_backend(backend).build_module``
    rebuilds the module from it), ``dtype``, ``tensors`` (name -> shape), ``compile_options``, ``program``
    (``file`` = basename of the source, ``source_sha256``, ``params`` with exact rationals as "p/q" strings
    and floats as JSON numbers, ``input`` = name, dim, domain), ``weights`` (``file``, ``sha256``) and
    ``promise`` (what the backend guarantees for this dtype: ``exact_in_reals``, ``rel_tol``, ``note``;
    ``lsrl verify --checkpoint`` checks against it).

``manifest.json``
    Where every program value lives in the model. ``layers`` lists the activation vectors in order: the
    pseudo-layer ``input`` (the raw input x) and each module layer by its parameter prefix (``stages.i`` for
    lrnn: the output of ``module.stages[i]``; ``rnns.i`` for rnn: the output sequence of ``module.rnns[i]``).
    ``variables`` maps each program variable name (IR node label) to a *list* of entries (one name can bind
    several nodes, e.g. a function local bound on every call; in node order). ``probes`` maps each probe to
    ``{"head", "dim", "value": entry}`` and ``output`` is ``{"head": "readout", "dim", "value": entry}``.
    An entry is::

        {"node", "label", "op", "dim", "span": {file, line, col, end_line, end_col} | null,
         "materialized": bool,
         "placements": [{"layer", "start", "stop", "encoding"}, ...],   # materialized values only
         "depends_on": [{"node", "label"}, ...],                         # views only: their operands
         "readout": {"layer", "start", "stop", "weight", "bias"} | null}

    ``readout`` is the value as a linear function of one layer's units:
    ``value_t = weight @ units_t[start:stop] + bias`` (float64 of the exact coefficients). For a
    materialized value it decodes its earliest placement (encodings: ``linear``/``relu``: the units are the
    value; ``pair``/``gate``: unit pairs (2k, 2k+1) hold (+, -) so ``v_k = u[2k] - u[2k+1]``). A value that is
    not materialized (a linear view fused into its readers, e.g. ``let d = a - b``) is read out through its
    linear form over materialized values (``lsrl.lowering.forms``) at the earliest layer holding all of
    them; if no single layer holds them all, ``readout`` is null and ``depends_on`` names them. A constant
    has ``layer`` null and an empty unit range.

All JSON is written with sorted keys and a 2-space indent (except inside ``module_config``, which keeps the
backend's key order because the order of e.g. its ``probes`` is the order of the probe heads), with no
timestamps and no absolute paths: saving the same compiled program twice gives byte-identical files.

Error codes (all raised as ``LsrlError``):

- E0801  the path is not a checkpoint directory (missing, not a directory, or without config.json and
         model.safetensors)
- E0802  a checkpoint file is missing (config.json, model.safetensors or manifest.json)
- E0803  malformed checkpoint JSON (not JSON, or missing/ill-typed fields), or a module config the backend
         cannot build
- E0804  unsupported checkpoint format/format_version, or a malformed lsrl version string
- E0805  unknown backend
- E0806  model.safetensors does not match the sha256 recorded in config.json (tampered or corrupted)
- E0807  a tensor's shape differs from config.json (or from the module the config describes)
- E0808  a tensor's dtype differs from config.json, or the dtype is not supported
- E0809  model.safetensors cannot be parsed
- E0810  the tensor names in model.safetensors differ from those in config.json / the module
- E0811  the checkpoint cannot be written (I/O error)
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
import math
import os
import re
import struct
from fractions import Fraction
from pathlib import Path

import numpy as np
import torch

from lsrl.diagnostics import error
from lsrl.ir.rational import RatArray

FORMAT = "lsrl-checkpoint"
MANIFEST_FORMAT = "lsrl-manifest"
FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
WEIGHTS_FILE = "model.safetensors"
MANIFEST_FILE = "manifest.json"

DTYPE_NAMES = {
    torch.float32: "float32",
    torch.float64: "float64",
    torch.float16: "float16",
    torch.bfloat16: "bfloat16",
}
DTYPES = {v: k for k, v in DTYPE_NAMES.items()}
_VERSION_RE = re.compile(r"^\d+\.\d+\.\d+([.+-]?[0-9A-Za-z][0-9A-Za-z.+-]*)?$")
_HINT_RESAVE = "re-create it with `save_checkpoint(compile_program(...), directory)`"

__all__ = [
    "CONFIG_FILE",
    "FORMAT",
    "FORMAT_VERSION",
    "MANIFEST_FILE",
    "WEIGHTS_FILE",
    "build_manifest",
    "load",
    "load_config",
    "load_manifest",
    "program_record",
    "recorded_params",
    "save_checkpoint",
]


# ---------------------------------------------------------------- JSON helpers


# Backend module configs may depend on key order (e.g. the order of `probes` is the order of the probe
# heads), so they keep the backend's (deterministic) order; every other object has its keys sorted.
_KEEP_ORDER = ("module_config",)


def _sorted(obj, keep: bool = False):
    if isinstance(obj, dict):
        items = obj.items() if keep else sorted(obj.items())
        return {k: _sorted(v, keep or k in _KEEP_ORDER) for k, v in items}
    if isinstance(obj, list):
        return [_sorted(v, keep) for v in obj]
    return obj


def _dumps(obj) -> bytes:
    """Canonical JSON: sorted keys (but see _KEEP_ORDER), 2-space indent, ASCII, trailing newline."""
    text = json.dumps(_sorted(obj), indent=2, ensure_ascii=True, allow_nan=False)
    return (text + "\n").encode()


def _num(x) -> float | str:
    """A coefficient as a JSON number (float64), non-finite values as strings."""
    f = float(x)
    return f + 0.0 if math.isfinite(f) else repr(f)


def _scalar(v) -> object:
    """A parameter/domain scalar: exact rationals as "p/q" strings ("3" when integral), floats as numbers."""
    if isinstance(v, (bool, np.bool_)):
        return str(int(v))
    if isinstance(v, (int, np.integer)):
        return str(int(v))
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    if isinstance(v, (float, np.floating)):
        return _num(v)
    if isinstance(v, np.ndarray):
        return [_scalar(x) for x in v.tolist()] if v.ndim else _scalar(v.item())
    if isinstance(v, (list, tuple)):
        return [_scalar(x) for x in v]
    if hasattr(v, "arr"):  # a frontend Const
        return _scalar(v.arr)
    return str(v)


def _plain(obj):
    """A backend config made JSON-safe (numpy scalars/arrays to Python, tuples to lists)."""
    if isinstance(obj, dict):
        return {str(k): _plain(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_plain(v) for v in obj]
    if isinstance(obj, (bool, np.bool_)):
        return bool(obj)
    if isinstance(obj, (int, np.integer)):
        return int(obj)
    if isinstance(obj, (float, np.floating)):
        return _num(obj)
    if isinstance(obj, Fraction):
        return _scalar(obj)
    if obj is None or isinstance(obj, str):
        return obj
    raise TypeError(f"backend config holds a non-JSON value {obj!r}")


def _span(span) -> dict | None:
    if span is None:
        return None
    return {
        "file": os.path.basename(span.file),
        "line": span.line,
        "col": span.col,
        "end_line": span.end_line,
        "end_col": span.end_col,
    }


# ---------------------------------------------------------------- saving


def _state_tensors(module: torch.nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().to("cpu").contiguous() for k, v in module.state_dict().items()}


def _dtype_of(tensors: dict[str, torch.Tensor]) -> str:
    dtypes = {t.dtype for t in tensors.values()}
    if len(dtypes) != 1 or next(iter(dtypes)) not in DTYPE_NAMES:
        raise ValueError(
            f"a compiled module must hold tensors of one float dtype, got {sorted(map(str, dtypes))}"
        )
    return DTYPE_NAMES[dtypes.pop()]


def _safetensors_bytes(tensors: dict[str, torch.Tensor], metadata: dict[str, str]) -> bytes:
    """safetensors serialisation with a canonical header (the library's metadata order is not stable)."""
    from safetensors.torch import save

    raw = save(tensors, metadata=metadata)
    (n,) = struct.unpack("<Q", raw[:8])
    header = json.loads(raw[8 : 8 + n])
    text = json.dumps(header, sort_keys=True, separators=(",", ":"), ensure_ascii=True).encode()
    if len(text) > n:  # cannot happen for a reordering; keep the library's bytes then
        return raw
    return raw[:8] + text + b" " * (n - len(text)) + raw[8 + n :]


def program_record(prog) -> dict:
    """How config.json identifies the compiled program: source file, its hash, params and input."""
    return {
        "file": os.path.basename(prog.file),
        "source_sha256": prog.source_sha256,
        "params": {k: _scalar(v) for k, v in prog.params.items()},
        "input": {"name": prog.input.name, "dim": prog.input.dim, "domain": _domain(prog.input.domain)},
    }


def recorded_params(cfg: dict) -> dict[str, object]:
    """The params a checkpoint was compiled with, back as exact values (inverse of `program_record`)."""

    def value(v):
        if isinstance(v, list):
            return [value(x) for x in v]
        return Fraction(v) if isinstance(v, str) else float(v)

    try:
        return {k: value(v) for k, v in cfg["program"]["params"].items()}
    except (KeyError, TypeError, ValueError, ZeroDivisionError, AttributeError):
        raise error("E0803", f"{CONFIG_FILE}: program.params is malformed", None, _HINT_RESAVE) from None


def _promise(compiled, dtype: str) -> dict:
    """What the backend guarantees for the saved dtype (`lsrl verify --checkpoint` checks against it)."""
    return compiled.promise(dtype).to_json()


def recorded_promise(cfg: dict, directory):
    """The promise a checkpoint's config.json records (lsrl.guarantee.promise.Promise)."""
    from lsrl.guarantee.promise import Promise

    try:
        return Promise.from_json(cfg["promise"])
    except (KeyError, TypeError, ValueError, AttributeError):
        raise error("E0803", f"{CONFIG_FILE} of {directory} records no valid promise to verify against", None,
                    "recompile it with `lsrl compile` (checkpoints record the backend's promise)") from None


def _domain(domain) -> dict | None:
    if domain is None:
        return None
    return {"kind": domain.kind, "values": [_scalar(v) for v in domain.values]}


def _write(path: Path, data: bytes) -> None:
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_bytes(data)
    os.replace(tmp, path)


def save_checkpoint(compiled, directory) -> Path:
    """Write `compiled` (a `lsrl.compile.Compiled`) to `directory` (created if needed); returns its Path."""
    import lsrl

    directory = Path(directory)
    tensors = _state_tensors(compiled.module)
    dtype = _dtype_of(tensors)
    backend = compiled.options.backend
    weights = _safetensors_bytes(
        tensors,
        {
            "format": "pt",
            "lsrl_format": FORMAT,
            "lsrl_format_version": str(FORMAT_VERSION),
            "lsrl_version": lsrl.__version__,
            "backend": backend,
            "dtype": dtype,
        },
    )
    prog = compiled.program
    config = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "lsrl_version": lsrl.__version__,
        "backend": backend,
        "module_config": _plain(compiled.emitted.config),
        "dtype": dtype,
        "tensors": {k: list(t.shape) for k, t in tensors.items()},
        "compile_options": _plain(dataclasses.asdict(compiled.options)),
        "program": program_record(prog),
        "weights": {"file": WEIGHTS_FILE, "sha256": hashlib.sha256(weights).hexdigest()},
        "promise": _promise(compiled, dtype),
    }
    manifest = build_manifest(compiled)
    try:
        directory.mkdir(parents=True, exist_ok=True)
        _write(directory / WEIGHTS_FILE, weights)
        _write(directory / CONFIG_FILE, _dumps(config))
        _write(directory / MANIFEST_FILE, _dumps(manifest))
    except OSError as exc:
        raise error(
            "E0811",
            f"cannot write checkpoint to {directory}: {exc.strerror or exc}",
            None,
            "choose a writable directory path",
        ) from None
    return directory


# ---------------------------------------------------------------- manifest


def _layer_index(name: str) -> tuple[int, str]:
    if name == "input":
        return (-1, name)
    head, _, idx = name.rpartition(".")
    return (int(idx), head) if idx.isdigit() else (1 << 30, name)


def _layers(compiled) -> list[dict]:
    cfg = compiled.emitted.config
    out = [{"name": "input", "kind": "input", "width": compiled.graph.input_dim}]
    if "stages" in cfg:  # lrnn: stage outputs
        for i, st in enumerate(compiled.stack.stages):
            out.append({"name": f"stages.{i}", "kind": st.kind, "width": st.out.width})
    elif "hiddens" in cfg:  # rnn: one nn.RNN per stage
        for i, (h, st) in enumerate(zip(cfg["hiddens"], compiled.stack.stages, strict=True)):
            out.append({"name": f"rnns.{i}", "kind": st.kind, "width": int(h)})
    else:
        names = sorted({p.layer for p in compiled.emitted.placements}, key=_layer_index)
        out += [{"name": n, "kind": None, "width": None} for n in names]
    return out


def _decode(encoding: str, dim: int, width: int) -> np.ndarray | None:
    """(dim x width) matrix taking a placement's units to the value, or None if the encoding is unknown."""
    dec = np.zeros((dim, width), dtype=np.int64)
    if encoding in ("linear", "relu") and width == dim:
        dec[np.arange(dim), np.arange(dim)] = 1
    elif encoding in ("pair", "gate") and width == 2 * dim:
        dec[np.arange(dim), 2 * np.arange(dim)] = 1
        dec[np.arange(dim), 2 * np.arange(dim) + 1] = -1
    else:
        return None
    return dec.astype(object)


def _readout(form, dim: int, places: dict[int, dict[str, tuple[int, int, str]]], order: list[str]):
    """The value's linear read-out from the earliest layer holding all its operands, or None."""
    bias = [_num(v) for v in form.bias.data]
    if not form.terms:
        return {"layer": None, "start": 0, "stop": 0, "weight": [[] for _ in range(dim)], "bias": bias}
    for layer in order:
        spots = [places.get(m, {}).get(layer) for m in form.deps]
        if any(s is None for s in spots):
            continue
        start, stop = min(s[0] for s in spots), max(s[1] for s in spots)
        w = np.full((dim, stop - start), Fraction(0), dtype=object)
        ok = True
        for (_, mat), (a, b, enc) in zip(form.terms, spots, strict=True):
            dec = _decode(enc, mat.shape[1], b - a)
            if dec is None:
                ok = False
                break
            w[:, a - start : b - start] += (RatArray.of(mat) @ RatArray.of(dec)).to_fractions()
        if ok:
            return {
                "layer": layer,
                "start": start,
                "stop": stop,
                "weight": [[_num(v) for v in row] for row in w],
                "bias": bias,
            }
    return None


def build_manifest(compiled) -> dict:
    """The manifest dict (see the module docstring) of a compiled program."""
    from lsrl.lowering.forms import MATERIAL, forms

    graph = compiled.graph
    fs = forms(graph)
    layers = _layers(compiled)
    order = [la["name"] for la in layers]
    places: dict[int, dict[str, tuple[int, int, str]]] = {
        graph.input: {"input": (0, graph.input_dim, "linear")}
    }
    listed: dict[int, list[dict]] = {}
    for p in compiled.emitted.placements:
        places.setdefault(p.node, {}).setdefault(p.layer, (p.start, p.stop, p.encoding))
        listed.setdefault(p.node, []).append(
            {"layer": p.layer, "start": p.start, "stop": p.stop, "encoding": p.encoding}
        )
    listed[graph.input] = [{"layer": "input", "start": 0, "stop": graph.input_dim, "encoding": "linear"}]
    extra = [la for la in {p.layer for p in compiled.emitted.placements} if la not in order]
    order += sorted(extra, key=_layer_index)
    rank = {name: i for i, name in enumerate(order)}

    def entry(node_id: int) -> dict:
        n = graph[node_id]
        material = isinstance(n.op, MATERIAL)
        form = fs[node_id]
        return {
            "node": n.id,
            "label": n.label,
            "op": n.op.mnemonic,
            "dim": n.dim,
            "span": _span(n.span),
            "materialized": material,
            "placements": sorted(listed.get(n.id, []), key=lambda p: (rank[p["layer"]], p["start"])),
            "depends_on": [] if material else [{"node": m, "label": graph[m].label} for m in form.deps],
            "readout": _readout(form, n.dim, places, order),
        }

    variables: dict[str, list[dict]] = {}
    for n in graph.nodes:
        if n.label:
            variables.setdefault(n.label, []).append(entry(n.id))
    heads = {name: f"probe_heads.{i}" for i, (name, _) in enumerate(graph.probes)}
    return {
        "format": MANIFEST_FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": compiled.options.backend,
        "program": os.path.basename(compiled.program.file),
        "layers": layers,
        "variables": variables,
        "probes": {
            name: {"head": heads[name], "dim": graph[i].dim, "value": entry(i)} for name, i in graph.probes
        },
        "output": {"head": "readout", "dim": graph.output_dim, "value": entry(graph.output)},
    }


# ---------------------------------------------------------------- loading


def _check_dir(directory) -> Path:
    d = Path(directory)
    if not d.is_dir():
        what = "does not exist" if not d.exists() else "is not a directory"
        raise error(
            "E0801",
            f"{d} {what}: not an lsrl checkpoint",
            None,
            "pass the directory written by save_checkpoint (holding config.json and model.safetensors)",
        )
    if not (d / CONFIG_FILE).exists() and not (d / WEIGHTS_FILE).exists():
        raise error(
            "E0801",
            f"{d} is not an lsrl checkpoint (no {CONFIG_FILE}, no {WEIGHTS_FILE})",
            None,
            "pass the directory written by save_checkpoint",
        )
    return d


def _read_json(path: Path, what: str) -> dict:
    if not path.is_file():
        raise error(
            "E0802",
            f"checkpoint file {path.name} is missing from {path.parent}",
            None,
            f"the {what} is written by save_checkpoint; {_HINT_RESAVE}",
        )
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise error(
            "E0803", f"{path.name} in {path.parent} is not valid JSON: {exc}", None, _HINT_RESAVE
        ) from None
    except OSError as exc:
        raise error("E0802", f"cannot read {path}: {exc.strerror or exc}", None, _HINT_RESAVE) from None
    if not isinstance(obj, dict):
        raise error("E0803", f"{path.name} in {path.parent} is not a JSON object", None, _HINT_RESAVE)
    return obj


def _field(obj: dict, key: str, kind, file: str):
    if key not in obj or not isinstance(obj[key], kind) or (kind is int and isinstance(obj[key], bool)):
        name = kind.__name__ if isinstance(kind, type) else "/".join(k.__name__ for k in kind)
        raise error("E0803", f"{file}: field `{key}` is missing or not a {name}", None, _HINT_RESAVE)
    return obj[key]


def _check_format(obj: dict, fmt: str, file: str) -> None:
    if obj.get("format") != fmt:
        raise error(
            "E0804",
            f"{file}: format is {obj.get('format')!r}, expected {fmt!r}",
            None,
            "this is not a file written by lsrl's save_checkpoint",
        )
    version = obj.get("format_version")
    if not isinstance(version, int) or isinstance(version, bool) or version != FORMAT_VERSION:
        raise error(
            "E0804",
            f"{file}: unsupported checkpoint format_version {version!r} (this lsrl reads {FORMAT_VERSION})",
            None,
            "load it with the lsrl version that wrote it, or re-compile",
        )


def load_config(directory) -> dict:
    """Read and validate a checkpoint's config.json (format, version and field types)."""
    d = _check_dir(directory)
    cfg = _read_json(d / CONFIG_FILE, "model config")
    _check_format(cfg, FORMAT, CONFIG_FILE)
    version = _field(cfg, "lsrl_version", str, CONFIG_FILE)
    if not _VERSION_RE.match(version):
        raise error(
            "E0804",
            f"{CONFIG_FILE}: lsrl_version {version!r} is not a version number (e.g. 0.1.0)",
            None,
            _HINT_RESAVE,
        )
    _field(cfg, "backend", str, CONFIG_FILE)
    _field(cfg, "module_config", dict, CONFIG_FILE)
    _field(cfg, "dtype", str, CONFIG_FILE)
    tensors = _field(cfg, "tensors", dict, CONFIG_FILE)
    for name, shape in tensors.items():
        if not isinstance(shape, list) or not all(
            isinstance(s, int) and not isinstance(s, bool) and s >= 0 for s in shape
        ):
            raise error(
                "E0803", f"{CONFIG_FILE}: shape of tensor `{name}` is not a list of sizes", None, _HINT_RESAVE
            )
    weights = _field(cfg, "weights", dict, CONFIG_FILE)
    sha = _field(weights, "sha256", str, CONFIG_FILE)
    if not re.fullmatch(r"[0-9a-f]{64}", sha):
        raise error("E0803", f"{CONFIG_FILE}: weights.sha256 is not a sha256 hex digest", None, _HINT_RESAVE)
    return cfg


def _shape_error(where: str, name: str, got, want) -> Exception:
    return error(
        "E0807",
        f"tensor `{name}` has shape {list(got)} in {where} but {list(want)} in {CONFIG_FILE}",
        None,
        f"the checkpoint files do not belong together; {_HINT_RESAVE}",
    )


def _names_error(where: str, got: set, want: set) -> Exception:
    missing, extra = sorted(want - got), sorted(got - want)
    parts = ([f"missing {', '.join(missing[:5])}"] if missing else []) + (
        [f"unexpected {', '.join(extra[:5])}"] if extra else []
    )
    return error(
        "E0810",
        f"the tensors in {where} differ from {CONFIG_FILE}: {'; '.join(parts)}",
        None,
        f"the checkpoint files do not belong together; {_HINT_RESAVE}",
    )


def load(directory) -> torch.nn.Module:
    """Rebuild a saved compiled model: checks format, backend, shapes, dtypes and the weights' sha256."""
    from safetensors import SafetensorError
    from safetensors.torch import load_file

    from lsrl.backends import BACKENDS

    d = _check_dir(directory)
    cfg = load_config(d)
    backend = cfg["backend"]
    if backend not in BACKENDS:
        raise error(
            "E0805",
            f"{CONFIG_FILE}: unknown backend `{backend}`",
            None,
            f"available: {', '.join(sorted(BACKENDS))}",
        )
    dtype_name = cfg["dtype"]
    if dtype_name not in DTYPES:
        raise error(
            "E0808",
            f"{CONFIG_FILE}: unsupported dtype `{dtype_name}`",
            None,
            f"supported: {', '.join(sorted(DTYPES))}",
        )
    dtype = DTYPES[dtype_name]
    want = {k: tuple(v) for k, v in cfg["tensors"].items()}

    try:
        module = BACKENDS[backend].build_module(cfg["module_config"])
    except Exception as exc:  # a hand-edited module config: report, never a traceback
        raise error(
            "E0803",
            f"{CONFIG_FILE}: module_config does not describe a valid `{backend}` module "
            f"({type(exc).__name__}: {exc})",
            None,
            _HINT_RESAVE,
        ) from None
    module = module.to(dtype)
    expected = module.state_dict()
    if set(expected) != set(want):
        raise _names_error("the module built from module_config", set(expected), set(want))
    for name, t in expected.items():
        if tuple(t.shape) != want[name]:
            raise _shape_error("the module built from module_config", name, t.shape, want[name])

    path = d / WEIGHTS_FILE
    if not path.is_file():
        raise error("E0802", f"checkpoint file {WEIGHTS_FILE} is missing from {d}", None, _HINT_RESAVE)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise error("E0802", f"cannot read {path}: {exc.strerror or exc}", None, _HINT_RESAVE) from None
    digest = hashlib.sha256(data).hexdigest()
    if digest != cfg["weights"]["sha256"]:
        raise error(
            "E0806",
            f"{WEIGHTS_FILE} does not match its recorded sha256 (expected "
            f"{cfg['weights']['sha256'][:16]}..., got {digest[:16]}...): the weights were modified or "
            "corrupted",
            None,
            f"restore the original file; {_HINT_RESAVE}",
        )
    try:
        tensors = load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as exc:
        raise error("E0809", f"cannot parse {WEIGHTS_FILE}: {exc}", None, _HINT_RESAVE) from None
    if set(tensors) != set(want):
        raise _names_error(WEIGHTS_FILE, set(tensors), set(want))
    for name, t in tensors.items():
        if tuple(t.shape) != want[name]:
            raise _shape_error(WEIGHTS_FILE, name, t.shape, want[name])
        if t.dtype != dtype:
            got = DTYPE_NAMES.get(t.dtype, str(t.dtype).removeprefix("torch."))
            raise error(
                "E0808",
                f"tensor `{name}` is {got} in {WEIGHTS_FILE} but {CONFIG_FILE} says {dtype_name}",
                None,
                f"the checkpoint files do not belong together; {_HINT_RESAVE}",
            )
    module.load_state_dict(tensors, strict=True)
    return module.eval()


def load_manifest(directory) -> dict:
    """Read a checkpoint's manifest.json (see the module docstring for its layout)."""
    d = _check_dir(directory)
    manifest = _read_json(d / MANIFEST_FILE, "manifest")
    _check_format(manifest, MANIFEST_FORMAT, MANIFEST_FILE)
    for key in ("layers", "variables", "probes", "output"):
        _field(manifest, key, (list, dict), MANIFEST_FILE)
    return manifest
