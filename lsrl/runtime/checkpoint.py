"""Checkpoints: a compiled model as a directory of plain, reproducible files, and loading it back.

This is checkpoint format version 2 (``format_version`` 2 in config.json and manifest.json, and
``lsrl_format_version`` "2" in the safetensors metadata). Version 1 checkpoints stored placements as encoding
strings (``linear``/``relu``/``pair``/``gate``) and a scalar promise (``rel_tol``); they are refused (E0804)
and must be recompiled with this lsrl (``lsrl compile FILE --backend B -o DIR``).

A checkpoint directory holds three files:

``model.safetensors``
    The module's ``state_dict`` (contiguous tensors in the compiled dtype, parameter names exactly as the
    backend's module has them: ``{prefix}.{i}.<param>`` for layer i, where ``prefix`` is the backend's
    layer attribute (``lsrl.backends.BACKENDS[name].prefix``: ``stages`` for lrnn, ``rnns`` for rnn,
    ``grus`` for gru, ``lstms`` for lstm, ``layers`` for mamba), e.g. ``stages.0.A``, ``grus.1.weight_hh_l0``
    or ``layers.2.mixer.A_log``; then
    ``readout.weight``/``readout.bias`` and ``probe_heads.{k}.*``). The safetensors metadata is
    ``{"format": "pt", "lsrl_format": "lsrl-checkpoint", "lsrl_format_version": "2", "lsrl_version": ...,
    "backend": ..., "dtype": ...}``; the header is written with sorted keys so the bytes are reproducible.

``config.json``
    Everything needed to rebuild and check the module: ``format``/``format_version``, ``lsrl_version``,
    ``backend``, ``module_config`` (the backend's ``Emitted.config``; ``get_backend(backend).build_module``
    rebuilds the module from it; for rnn/gru/lstm it holds ``inputs``, ``hiddens``, ``readout_in``,
    ``output_dim`` and ``probes``, enough to rebuild the model from vanilla ``torch.nn.RNN``/``GRU``/``LSTM``
    and ``torch.nn.Linear`` layers; for mamba ``hidden``, ``inners``, ``states``, ``hiddens``, ``input_dim``,
    ``readout_in``, ``output_dim``, ``probes`` and ``slots``), ``dtype``, ``tensors`` (name -> shape),
    ``compile_options`` (as given: its ``max_len`` may be null, meaning the default), ``max_len`` (the effective one:
    ``compiled.options.length_limit``, which every constant and the promise are made for), ``program``
    (``file`` = basename of the source, ``source_sha256``, ``params`` with exact rationals as "p/q" strings
    and floats as JSON numbers, ``input`` = name, dim, domain, and, only when the program names one,
    ``generator`` = ``{"name", "args"}``: its input generator and arguments, written as params are;
    `recorded_generator` reads it back), ``weights`` (``file``, ``sha256``) and
    ``promise``: what the backend guarantees for the saved dtype and max_len, exactly as
    ``Promise.to_json()`` writes it (``lsrl.guarantee.promise``; `recorded_promise` reads it back):
    ``{"backend", "dtype", "max_len", "outputs": {name: {"exactness", "abs_bound", "reference_bound", ...}},
    "conditions", "certified", "note"}`` with one output entry for ``output`` and one per probe;
    ``lsrl verify --checkpoint`` checks the loaded model against it.

``manifest.json``
    Where every program value lives in the model. ``layers`` lists the activation vectors in order, each
    ``{"name", "kind", "width"}``: the pseudo-layer ``input`` (the raw input x) and each module layer by its
    parameter prefix ``{prefix}.{i}``: for lrnn the output of ``module.stages[i]`` (the lowered stack's
    stage i, ``width`` = the stage's output width); for the other backends the output sequence of the torch
    layer ``getattr(module, prefix)[i]`` (``output[0]`` of an ``nn.RNN``/``GRU``/``LSTM``; ``width`` = its
    hidden size, ``module_config["hiddens"][i]``); ``kind`` is the stack stage's kind (state/mlp/gate).
    ``variables`` maps each program variable name (IR node label) to a *list* of entries (one name can bind
    several nodes, e.g. a function local bound on every call; in node order); ``unnamed`` lists the entries
    of the materialized values without a name (the ReLUs, products and states a prelude call makes), so
    every unit of every layer is accounted for. ``probes`` maps each probe to
    ``{"head", "dim", "value": entry}`` and ``output`` is ``{"head": "readout", "dim", "value": entry}``.
    An entry is::

        {"node", "label", "op", "dim", "span": {file, line, col, end_line, end_col} | null,
         "materialized": bool,
         "placements": [{"layer", "start", "stop", "decode", "offset", "weight"}, ...],  # materialized only
         "depends_on": [{"node", "label"}, ...],                         # views only: their operands
         "readout": {"layer", "start", "stop", "weight", "bias"} | null}

    A placement says the value is an affine function of units ``[start, stop)`` of layer ``layer``:
    ``value_t = decode @ units_t[start:stop] + offset``, exactly. ``decode`` (dim x (stop - start)) and
    ``offset`` (dim) are exact rationals as strings ("p/q", or "p" when integral): a backend's encodings are
    just matrices (lrnn: the identity; rnn: (+, -) unit pairs decode as rows (.., 1, -1, ..); gru/lstm:
    scaled units, e.g. 2^30, and GRU switch pairs as (+c, -c)). ``weight`` is ``decode`` in float64 (each
    entry correctly rounded). Every copy of a materialized value is listed, earliest layer first; the
    input node has the single placement ``input`` [0, input dim) with the identity decode.

    ``readout`` is the value as one linear function of one layer's units:
    ``value_t = weight @ units_t[start:stop] + bias`` (float64 of exact coefficients). The value's linear
    form over materialized values (``lsrl.lowering.forms``: ``sum_m M_m @ value(m) + b``; a materialized
    value is its own identity form) is composed with each operand's placement in the earliest layer that
    holds all of them: ``weight = sum_m M_m @ decode_m`` (over the operands' unit ranges),
    ``bias = b + sum_m M_m @ offset_m``. A value that is not materialized (a linear view fused into its
    readers, e.g. ``let d = a - b``) is read out that way too; if no single layer holds all its operands,
    ``readout`` is null and ``depends_on`` names them. A constant has ``layer`` null and an empty unit range.

    Node ids: ``node`` (and ``depends_on``) are ids of the *optimised* graph the model was built from
    (``compiled.graph``), not of ``program.graph``, whose ids ``lsrl.interpret(program.graph, x,
    trace=True).values`` reports (they coincide only when compiled with ``optimize=False``). To compare a
    manifest entry with the interpreter's trace, match nodes by ``label`` and ``span``: `match_trace`
    returns {manifest node id: program node id} for every node whose (label, span, dim) identifies exactly
    one node on both sides.

All JSON is written with sorted keys and a 2-space indent (except inside ``module_config``, which keeps the
backend's key order because the order of e.g. its ``probes`` is the order of the probe heads), with no
timestamps and no absolute paths: saving the same compiled program twice gives byte-identical files.

Error codes (all raised as ``LsrlError``):

- E0801  the path is not a checkpoint directory (missing, not a directory, or without config.json and
         model.safetensors)
- E0802  a checkpoint file is missing (config.json, model.safetensors or manifest.json)
- E0803  malformed checkpoint JSON (not JSON, or missing/ill-typed fields), or a module config the backend
         cannot build
- E0804  unsupported checkpoint format/format_version (a version 1 checkpoint: recompile it), or a malformed
         lsrl version string
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
import os
import re
import struct
from fractions import Fraction
from pathlib import Path

import torch

from lsrl.diagnostics import error
from lsrl.runtime.canon import _dumps, _plain, _scalar
from lsrl.runtime.manifest import FORMAT_VERSION, MANIFEST_FORMAT, build_manifest, match_trace

FORMAT = "lsrl-checkpoint"
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
    "match_trace",
    "program_record",
    "recorded_generator",
    "recorded_params",
    "recorded_promise",
    "save_checkpoint",
]


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
    """How config.json identifies the compiled program: source file, its hash, params and input, and the input
    generator it names (the key is left out when it names none, as in checkpoints older than the field)."""
    record = {
        "file": os.path.basename(prog.file),
        "source_sha256": prog.source_sha256,
        "params": {k: _scalar(v) for k, v in prog.params.items()},
        "input": {"name": prog.input.name, "dim": prog.input.dim, "domain": _domain(prog.input.domain)},
    }
    generator = getattr(prog, "generator", None)
    if generator is not None:
        record["generator"] = {"name": generator.name, "args": {k: _scalar(v) for k, v in generator.args.items()}}
    return record


def check_program(cfg: dict, program, directory) -> None:
    """E0704 unless `program` is the source and params the checkpoint was compiled from."""
    want, got = cfg.get("program", {}), program_record(program)
    for key, what in (("source_sha256", "source (sha256 {:.12}…)"), ("params", "params ({})")):
        if want.get(key) != got[key]:
            raise error("E0704", f"checkpoint {directory} was compiled from {what.format(str(want.get(key)))}, "
                        f"not from {program.file} with {what.format(str(got[key]))}", None,
                        "pass the exact source and -D values it was compiled with, or recompile it")


def recorded_options(cfg: dict):
    """The CompileOptions a checkpoint was compiled with."""
    from lsrl.compiling import CompileOptions

    opts = cfg.get("compile_options", {})
    return CompileOptions(cfg["backend"], opts.get("max_len"), cfg["dtype"], bool(opts.get("optimize", True)))


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


def _recorded_value(v):
    """A recorded generator argument back as an exact value: "p/q" strings as Fractions, numbers as floats,
    lists as lists."""
    if isinstance(v, list):
        return [_recorded_value(x) for x in v]
    if isinstance(v, bool) or not isinstance(v, (str, int, float)):
        raise TypeError(f"not a recorded number: {v!r}")
    return Fraction(v) if isinstance(v, str) else float(v)


def recorded_generator(cfg: dict):
    """The input generator a checkpoint's program names (lsrl.program.GeneratorSpec, exact arguments), or None:
    none named, or a checkpoint written before config.json recorded it."""
    from lsrl.program import GeneratorSpec

    rec = cfg.get("program", {}).get("generator") if isinstance(cfg.get("program"), dict) else None
    if rec is None:
        return None

    def tuples(v):
        return tuple(tuples(x) for x in v) if isinstance(v, list) else v

    try:
        name, args = rec["name"], rec["args"]
        if not isinstance(name, str) or not isinstance(args, dict):
            raise TypeError
        return GeneratorSpec(name, {str(k): tuples(_recorded_value(v)) for k, v in args.items()})
    except (KeyError, TypeError, ValueError, ZeroDivisionError):
        raise error("E0803", f"{CONFIG_FILE}: program.generator is malformed", None, _HINT_RESAVE) from None


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
    """Write `compiled` (a `lsrl.compiling.Compiled`) to `directory` (created if needed); returns its Path."""
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
        "max_len": compiled.options.length_limit,
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
    if version == 1 and not isinstance(version, bool):
        raise error(
            "E0804",
            f"{file}: checkpoint format_version 1 is no longer supported (this lsrl reads {FORMAT_VERSION}): "
            "version 1 stored placements as encoding strings (linear/relu/pair/gate) and a scalar promise "
            "(rel_tol); version 2 stores exact decode matrices, the max_len and a per-output promise",
            None,
            "recompile it with this lsrl: `lsrl compile FILE --backend BACKEND -o DIR` (or save_checkpoint)",
        )
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
