"""Command-line interface: lsrl check | ir | run | compile | verify | trace | dataset | graph | obfuscate |
zoo (also `python -m lsrl`)."""

from __future__ import annotations

import argparse
import math
import os
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

from lsrl.diagnostics import SOURCES, LsrlError, error
from lsrl.frontend.elaborate import load_program, parse_param_value
from lsrl.ir.interpreter import interpret
from lsrl.ir.printer import dump
from lsrl.program import Program


class UsageError(LsrlError):
    """Bad command-line usage (unknown command or flag, a flag value out of range): exit status 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports bad usage as an lsrl diagnostic with exit status 2."""

    def error(self, message: str):  # noqa: D102
        self.print_usage(sys.stderr)
        raise UsageError(*error("E0900", message, None, f"see `{self.prog} --help`").diagnostics)


def _noise(text: str) -> float:
    """An argparse type: a finite relative noise level >= 0."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number") from None
    if not (math.isfinite(value) and value >= 0):
        raise argparse.ArgumentTypeError(f"{text} is not a finite number >= 0")
    return value


def _at_least(low: int):
    """An argparse type: an integer >= low (a usage error otherwise)."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not an integer") from None
        if value < low:
            raise argparse.ArgumentTypeError(f"{value} is below {low}")
        return value

    parse.__name__ = f"integer >= {low}"
    return parse


def _defines(pairs: list[str]) -> dict[str, object]:
    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip().isidentifier() or not value.strip():
            raise error("E0410", f"-D {pair}: expected NAME=VALUE", None, "e.g. -D T=3")
        out[name.strip()] = parse_param_value(name.strip(), value.strip())
    return out


def _load(args) -> Program:
    prog = load_program(args.file, _defines(args.define))
    if getattr(args, "json", None) is not True:
        _warn(prog)
    return prog


def _warn(prog: Program) -> None:
    """The program's warnings (unused bindings), rendered on stderr: they do not change the exit status."""
    from lsrl.diagnostics import render

    for w in prog.warnings:
        print(render(w, SOURCES), file=sys.stderr)


MAX_TOKENS = int(os.environ.get("LSRL_MAX_TOKENS", 1_000_000))  # one input sequence for run/trace


def parse_tokens(text: str, dim: int, exact: bool) -> np.ndarray:
    """'1 0 1' or '0.5,1 2,3' (tokens by whitespace, components by commas) -> array (time, dim)."""
    rows = []
    tokens = text.split()
    if len(tokens) > MAX_TOKENS:
        raise error("E0909", f"the input sequence has {len(tokens):,} tokens, above the limit of {MAX_TOKENS:,}",
                    None, "run a shorter sequence, or set LSRL_MAX_TOKENS to allow more")
    for i, tok in enumerate(tokens):
        parts = tok.split(",")
        if len(parts) != dim:
            raise error("E0902", f"input token {i} `{tok}` has {len(parts)} component(s), the program's input "
                        f"has dim {dim}", None, "separate components of one token with commas, tokens with spaces")
        try:
            row = [Fraction(p) if exact else float(Fraction(p) if "/" in p else p) for p in parts]
        except (ValueError, ZeroDivisionError):
            raise error("E0901", f"input token {i} `{tok}` is not a number", None,
                        "numbers like 1, -0.5, 2e3 or 1/3") from None
        if not all(_finite(v) for v in row):
            raise error("E0901", f"input token {i} `{tok}` is not a finite number", None,
                        "nan and inf have no place in a program's input")
        rows.append(row)
    if not rows:
        raise error("E0903", "the input sequence is empty", None, 'e.g. --input "1 0 1"')
    return np.array(rows, dtype=object if exact else np.float64)


def _finite(v) -> bool:
    try:
        return bool(np.isfinite(float(v)))
    except OverflowError:  # an exact token such as 1e999 has no float value
        return False


def format_number(v) -> str:
    if isinstance(v, Fraction):
        return str(v.numerator) if v.denominator == 1 else f"{v.numerator}/{v.denominator}"
    v = float(v)
    if v == 0:
        return "0"
    return str(int(v)) if v.is_integer() and abs(v) < 1e15 else repr(v)


# ---------------------------------------------------------------- commands


def cmd_check(args) -> int:
    """Every file is checked; the exit status is 1 if any has an error (each one's diagnostics printed)."""
    results = []
    for path in args.files:
        try:
            prog = load_program(path, _defines(args.define))
            results.append(_summary(prog, path))
        except LsrlError as exc:
            results.append({"file": path, "ok": False, "diagnostics": [d.to_json() for d in exc.diagnostics]})
            if not args.json:
                print(exc.render(SOURCES), file=sys.stderr)
            continue
        if not args.json:
            r = results[-1]
            dom = f" in {r['input']['domain']}" if r["input"]["domain"] else ""
            print(f"ok: {path}: input {r['input']['name']}[{r['input']['dim']}]{dom}; output dim {r['output_dim']}; "
                  f"{r['states']} state(s); {r['nodes']} nodes; probes: {', '.join(r['probes']) or 'none'}")
            if r["params"]:
                print(f"params: {r['params']}")
            _warn(prog)
    if args.json:
        _print_json({"files": results})
    return 0 if all(r["ok"] for r in results) else 1


def _summary(prog, path: str) -> dict:
    g = prog.graph
    return {"file": path, "ok": True, "diagnostics": [w.to_json() for w in prog.warnings],
            "input": {"name": prog.input.name, "dim": prog.input.dim,
                      "domain": str(prog.input.domain) if prog.input.domain else None},
            "output_dim": g.output_dim, "states": sum(1 for n in g.nodes if n.op.mnemonic == "linstate"),
            "nodes": len(g.nodes), "probes": [n for n, _ in g.probes],
            "params": prog.describe_params() if prog.params else None}


def _print_json(data) -> None:
    import json

    print(json.dumps(data, indent=1, sort_keys=True, default=_jsonable))


def cmd_ir(args) -> int:
    prog = _load(args)
    graph = prog.graph
    if args.after:
        from lsrl.passes import PASS_NAMES, optimize

        if args.after not in PASS_NAMES and args.after != "all":
            raise error("E0905", f"unknown pass `{args.after}`", None, f"passes: {', '.join(PASS_NAMES)}, all")
        graph, reports = optimize(graph, upto=None if args.after == "all" else args.after)
        for r in reports:
            print(f"# {r.line()}")
    print(dump(graph, locations=not args.no_locations))
    return 0


def _options(args):
    from lsrl.compiling import CompileOptions

    return CompileOptions(backend=args.backend or "lrnn", max_len=args.max_len, dtype=args.dtype or "float64",
                          optimize=not args.no_opt)


def cmd_compile(args) -> int:
    from lsrl.compiling import compile_program
    from lsrl.runtime.checkpoint import save_checkpoint

    prog, target = _load(args), _out_dir(args)
    compiled = compile_program(prog, _options(args))
    out = save_checkpoint(compiled, target)
    opts, cfg = compiled.options, compiled.emitted.config
    widths = cfg.get("hiddens") or compiled.stack.widths()[1:]  # the model's layer widths (units, not values)
    if args.json:
        _print_json({"file": args.file, "ok": True, "checkpoint": str(out), "backend": opts.backend,
                     "dtype": opts.dtype, "max_len": opts.length_limit, "widths": list(widths),
                     "parameters": compiled.parameter_count(), "promise": compiled.promise().to_json(),
                     "reports": [r.line() for r in compiled.reports]})
        return 0
    print(f"compiled {args.file} -> {out} (backend {opts.backend}, {opts.dtype}, max_len {opts.length_limit}): "
          f"{len(widths)} layers, widths {list(widths)}, {compiled.parameter_count():,} parameters")
    print(f"  promise: {compiled.promise().summary()}")
    for r in compiled.reports:
        print(f"  {r.line()}")
    return 0


def cmd_verify(args) -> int:
    from lsrl.verifying import verify, verify_checkpoint

    if args.checkpoint:
        from lsrl.runtime.checkpoint import load_config, recorded_params

        cfg = load_config(args.checkpoint)
        _agree_with_checkpoint(args, cfg)
        prog = load_program(args.file, _defines(args.define) if args.define
                            else recorded_params(cfg) if _same_source(args.file, cfg) else {})
        what = f"checkpoint {args.checkpoint} (backend {cfg['backend']}, {cfg['dtype']})"
    else:
        prog, options = _load(args), _options(args)
        what = f"backend {options.backend}, {options.dtype}"
    if not args.json:
        print(f"verify {args.file}: {what}, {args.samples} random sequences + edge cases, length {args.length}, "
              f"seed {args.seed}")
        if prog.params:
            print(f"  params: {prog.describe_params()}")
    bar = _progress if sys.stderr.isatty() and not args.json else None
    if args.checkpoint:
        report = verify_checkpoint(prog, args.checkpoint, samples=args.samples, length=args.length, seed=args.seed,
                                   progress=bar)
    else:
        report = verify(prog, options, samples=args.samples, length=args.length, seed=args.seed, progress=bar)
    if args.json:
        _print_json({"file": args.file, **report.to_json()})
    else:
        print("\n".join(report.lines()))
    return 0 if report.passed else 1


def _progress(done: int, total: int) -> None:
    """A one-line progress bar on a terminal's stderr (verify runs the interpreter and the model per batch)."""
    filled = 30 * done // total
    end = "\r" if done < total else "\r" + " " * 60 + "\r"
    print(f"  [{'#' * filled}{'.' * (30 - filled)}] {done}/{total} sequences", end=end, file=sys.stderr, flush=True)


def _jsonable(v):
    return None if v is None else str(v)


def _same_source(path: str, cfg: dict) -> bool:
    """Whether `path` holds the source the checkpoint was compiled from (else its params may not apply)."""
    import hashlib

    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False  # load_program reports the file problem
    return hashlib.sha256(text.encode()).hexdigest() == cfg.get("program", {}).get("source_sha256")


def _agree_with_checkpoint(args, cfg: dict) -> None:
    """Compile flags given beside --checkpoint must match what it was compiled with."""
    recorded = cfg.get("compile_options", {})
    for flag, given, saved in (("--backend", args.backend, cfg["backend"]), ("--dtype", args.dtype, cfg["dtype"]),
                               ("--max-len", args.max_len, cfg.get("max_len", recorded.get("max_len"))),
                               ("--no-opt", args.no_opt or None, (not recorded.get("optimize", True)) or None)):
        if given is not None and given != saved:
            raise error("E0705", f"{flag} {given} disagrees with the checkpoint, which was compiled with "
                        f"{flag} {saved}", None, f"drop {flag}: a checkpoint is verified as it was compiled")


def _out_dir(args) -> str:
    """The -o directory, refused when empty text (E0908: it would write into the current folder) or an existing
    non-empty folder (E0908 unless --force: files there would be overwritten or mixed in)."""
    out = args.output
    if not out.strip():
        raise error("E0908", "-o needs a directory name", None, "e.g. -o out/model")
    path = Path(out)
    if path.exists() and (not path.is_dir() or any(path.iterdir())) and not args.force:
        raise error("E0908", f"{out} already exists and is not an empty folder", None,
                    "choose a new folder, or pass --force to write into it")
    return out


def _out_file(name: str, what: str, example: str) -> Path:
    """The -o file, refused (E0908) unless it names a file in an existing folder; checked before any work."""
    path = Path(name)
    if not name or path.is_dir() or not path.parent.is_dir():
        raise error("E0908", f"cannot write the {what} to `{name}`", None,
                    f"give a file path in an existing folder, e.g. -o {example}")
    return path


def _input_text(args) -> str:
    if not args.input_file:
        return args.input
    if args.input_file == "-":
        return sys.stdin.read()
    try:
        with open(args.input_file, encoding="utf-8") as fh:
            return fh.read()
    except OSError as exc:
        raise error("E0904", f"cannot read {args.input_file}: {exc.strerror or exc}", None) from None


def cmd_trace(args) -> int:
    """A checkpoint's activations on one input, with what every unit holds (lsrl.interpretability.trace)."""
    import json

    from lsrl.interpretability import trace
    from lsrl.runtime.checkpoint import load_config

    if args.output is not None:
        _out_file(args.output, "activations", "trace.safetensors")

    cfg = load_config(args.checkpoint)
    x = parse_tokens(_input_text(args), int(cfg["program"]["input"]["dim"]), False)
    tr = trace(args.checkpoint, x)
    named = tr.named()
    for t in range(x.shape[0]):
        extras = " ".join(f"{k}=" + ",".join(format_number(v) for v in a[0, t]) for k, a in named.items())
        print(" ".join(format_number(v) for v in tr.output[0, t]) + f"\t# {extras}")
    if args.units:
        for layer, units in tr.units.items():
            print(f"{layer}:")
            for j, labels in enumerate(units):
                held = " + ".join(f"{_unit_name(u)} x {format_number(u.coefficient)}" for u in labels) or "-"
                print(f"  [{j}] {held}")
    if args.output is not None:
        from safetensors.numpy import save_file

        save_file({k: np.ascontiguousarray(v) for k, v in tr.layers.items()}, args.output)
        labels = {la: [[u.__dict__ for u in us] for us in units] for la, units in tr.units.items()}
        Path(args.output).with_suffix(".units.json").write_text(json.dumps(labels, indent=1, sort_keys=True))
        print(f"activations -> {args.output}, unit labels -> {Path(args.output).with_suffix('.units.json')}")
    return 0


def cmd_dataset(args) -> int:
    """A dataset of a checkpoint's inputs, outputs and activations (lsrl.interpretability.build_dataset)."""
    from lsrl.interpretability import build_dataset

    prog = load_program(args.program, _defines(args.define)) if args.program else None
    extra = _generator_args(args.generator_arg)
    sheet = build_dataset(args.checkpoint, _out_dir(args), args.n, args.length, prog, args.seed, args.shard_size,
                          generator=args.generator, generator_args=extra)
    gen = sheet["generator"]
    used = f"{gen['name']}(" + ", ".join(f"{k}={v}" for k, v in gen["args"].items()) + ")"
    print(f"dataset -> {args.output}: {sheet['sequences']} sequences of length {sheet['length']} from generator "
          f"{used} in {len(sheet['shards'])} shard(s), {len(sheet['tensors'])} tensors each (see datasheet.json)")
    return 0


def _generator_args(pairs: list[str]) -> dict[str, object]:
    """--generator-arg NAME=VALUE (repeatable): VALUE a constant LSRL expression, as with -D (E0412 otherwise)."""
    from lsrl.program import python_value

    out: dict[str, object] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name.isidentifier() or not value.strip():
            raise error("E0412", f"--generator-arg {pair}: expected NAME=VALUE", None, "e.g. --generator-arg T=3")
        try:
            const = parse_param_value(name, value.strip())
        except LsrlError:
            raise error("E0412", f"--generator-arg {pair}: the value is not a constant expression", None,
                        "a number like 3, 1/2 or 0.9, or a vector like [1, 2]") from None
        out[name] = python_value(const.arr.item() if const.ndim == 0 else const.arr.tolist())
    return out


def cmd_graph(args) -> int:
    """The program's causal graph (IR) or compiled layer stack, as DOT, SVG or PNG, plus the JSON map."""
    import json

    from lsrl.compiling import compile_program
    from lsrl.interpretability.graph import causal_graph, render, to_dot

    out = _out_file(args.output, "picture", "graph.svg")
    cg = causal_graph(compile_program(_load(args), _options(args)))
    dot = to_dot(cg, args.what)
    if args.format == "dot":
        out.write_text(dot)
    else:
        out.write_bytes(render(dot, args.format))
    if args.json:
        Path(args.json).write_text(json.dumps(cg, indent=1, sort_keys=True) + "\n")
    extra = f", map -> {args.json}" if args.json else ""
    print(f"{args.what} graph of {args.file} ({cg['backend']}) -> {out}{extra}")
    return 0


def cmd_obfuscate(args) -> int:
    """Compile, then permute/scale the units (and with --basis change the basis of the linear coordinates;
    function-preserving) and save with the manifest in sync."""
    from lsrl.compiling import compile_program
    from lsrl.interpretability.obfuscate import obfuscate
    from lsrl.runtime.checkpoint import save_checkpoint

    target = _out_dir(args)
    if args.checkpoint:
        compiled = _recompiled(args)
    else:
        compiled = compile_program(_load(args), _options(args))
    basis, notes = args.basis, []
    if basis != "none":
        from lsrl.backends import get_backend
        from lsrl.backends.base import linear_basis

        name = compiled.options.backend
        if linear_basis(get_backend(name)) is None:
            scaled = ", positive power-of-two scalings" if name == "rnn" else ""
            notes.append(f"--basis {basis}: no change of basis applies to backend {name}: every hidden unit passes "
                         f"through a ReLU or a gate (no linear coordinates); only permutations{scaled} and dead "
                         "units were applied")
            basis = "none"
    compiled = obfuscate(compiled, args.seed, dead=args.dead, basis=basis, rounds=args.basis_rounds)
    if args.noise:
        from lsrl.interpretability.obfuscate import with_noise
        from lsrl.verifying import compare

        compiled = with_noise(compiled, args.noise, args.seed)
        r = compare(compiled.program, compiled.module, compiled.promise(), 64, 64, args.seed)
        share = f", {100 * r.exact_share:.2f}% exact tokens" if r.exact_share is not None else ""
        print(f"noise {args.noise:g}: max abs err {r.max_abs:.3g} against the interpreter on 64 random "
              f"sequences of length 64{share} (no promise holds for noisy weights)")
    if basis != "none":
        notes += [compiled.rebase.summary(compiled.options.dtype), f"promise: {compiled.promise().summary()}"]
    out = save_checkpoint(compiled, target)
    print(f"obfuscated {args.file} (backend {compiled.options.backend}, seed {args.seed}) -> {out}")
    for note in notes:
        print(f"  {note}")
    return 0


def _recompiled(args):
    """The checkpoint given by --checkpoint, compiled again from FILE with its recorded options and params,
    checked to be the same model (obfuscation restates the promise, which needs the compiled stack)."""
    import torch

    from lsrl.compiling import compile_program
    from lsrl.runtime.checkpoint import check_program, load, load_config, recorded_options, recorded_params

    cfg = load_config(args.checkpoint)
    _agree_with_checkpoint(args, cfg)
    prog = load_program(args.file, _defines(args.define) if args.define else recorded_params(cfg))
    check_program(cfg, prog, args.checkpoint)
    compiled = compile_program(prog, recorded_options(cfg))
    saved = load(args.checkpoint).state_dict()
    if any(not torch.equal(saved[k], v) for k, v in compiled.module.state_dict().items()):
        raise error("E0705", f"compiling {args.file} again does not give the weights of {args.checkpoint}", None,
                    "obfuscate with the lsrl version that compiled it, or recompile it")
    return compiled


def cmd_export(args) -> int:
    from lsrl.runtime.hf_export import LSRL_INFO, export_hf, model_class

    out = export_hf(args.checkpoint, _out_dir(args))
    print(f"exported {args.checkpoint} -> {out}: transformers.{model_class(args.checkpoint)}.from_pretrained("
          f"{str(out)!r}) loads it (token ids and the head's logits: {out / LSRL_INFO})")
    return 0


def cmd_zoo(args) -> int:
    """Sample programs, compile each on the backends, write sources, checkpoints and a metadata table."""
    from lsrl.interpretability.sampler import zoo

    backends = args.backends.split(",") if args.backends else None
    if backends:
        from lsrl.backends import get_backend

        for b in backends:
            get_backend(b)
    rows = zoo(args.n, _out_dir(args), backends, args.seed, args.size, checkpoints=not args.no_checkpoints)
    nontrivial = sum(r["nontrivial"] for r in rows)
    print(f"zoo -> {args.output}: {len(rows)} programs ({nontrivial} non-trivial), table in zoo.json / zoo.csv")
    return 0


def _unit_name(u) -> str:
    where = f" @{u.span['line']}:{u.span['col']}" if u.span else ""
    return f"{u.variable or f'%{u.node}'}[{u.component}]{where}"


def cmd_run(args) -> int:
    prog = _load(args)
    x = parse_tokens(_input_text(args), prog.input.dim, args.exact)
    tracing = args.trace is not None
    result = interpret(prog.graph, x[None], exact=args.exact, trace=tracing)
    named = result.named(prog.graph) if tracing else {}
    unknown = [n for n in args.trace or () if n not in named]
    if unknown:
        raise error("E0907", f"--trace: no value named {', '.join(f'`{n}`' for n in unknown)}", None,
                    f"named values: {', '.join(named)}")
    if args.trace:
        named = {n: named[n] for n in args.trace}
    for t in range(x.shape[0]):
        line = " ".join(format_number(v) for v in result.output[0, t])
        if tracing:
            extras = " ".join(f"{k}=" + ",".join(format_number(v) for v in a[0, t]) for k, a in named.items())
            line = f"{line}\t# {extras}"
        print(line)
    return 0


def build_parser() -> argparse.ArgumentParser:
    import lsrl

    p = _Parser(prog="lsrl", description="Compile LSRL programs to recurrent-network weights. Exit status: "
                "0 success, 1 program error or failed verification, 2 usage error.")
    p.add_argument("--version", action="version", version=f"lsrl {lsrl.__version__}")
    sub = p.add_subparsers(dest="command", required=True, parser_class=_Parser)

    def common(sp):
        sp.add_argument("file", help="the .lsrl program")
        sp.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                        help="override a `param` (repeatable)")

    sp = sub.add_parser("check", help="parse and elaborate; print a summary or diagnostics")
    sp.add_argument("files", nargs="+", metavar="file", help="the .lsrl programs")
    sp.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                    help="override a `param` (repeatable)")
    sp.add_argument("--json", action="store_true", help="print a JSON report (summaries and diagnostics) on stdout")
    sp.set_defaults(fn=cmd_check)

    sp = sub.add_parser("ir", help="print the IR of a program")
    common(sp)
    sp.add_argument("--no-locations", action="store_true", help="omit source locations")
    sp.add_argument("--after", metavar="PASS", help="optimise up to and including PASS (or `all`) first")
    sp.set_defaults(fn=cmd_ir)

    def compiling(sp):
        common(sp)
        sp.add_argument("--backend", help="target architecture: one of lsrl.backends.BACKENDS: lrnn, rnn, "
                        "gru, lstm, mamba, hawk (default lrnn)")  # listed here: BACKENDS would import torch
        sp.add_argument("--max-len", type=_at_least(1), default=None,
                        help="longest sequence the compiled constants must be safe for (default 4096)")
        sp.add_argument("--dtype", choices=["float32", "float64"], help="default float64")
        sp.add_argument("--no-opt", action="store_true", help="skip the optimiser")

    sp = sub.add_parser("compile", help="compile to a checkpoint directory (safetensors + JSON)")
    compiling(sp)
    sp.add_argument("-o", "--output", required=True, help="checkpoint directory to write")
    sp.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    sp.add_argument("--json", action="store_true", help="print a JSON report on stdout (diagnostics too)")
    sp.set_defaults(fn=cmd_compile)

    sp = sub.add_parser("verify", help="compile and check the model against the interpreter")
    compiling(sp)
    sp.add_argument("--samples", type=_at_least(1), default=256, help="random sequences (default 256)")
    sp.add_argument("--length", type=_at_least(1), default=256, help="sequence length (default 256)")
    sp.add_argument("--seed", type=_at_least(0), default=0)
    sp.add_argument("--checkpoint", metavar="DIR",
                    help="verify this saved checkpoint (compiled from FILE) instead of compiling")
    sp.add_argument("--json", action="store_true", help="print the report as JSON")
    sp.set_defaults(fn=cmd_verify)

    sp = sub.add_parser("trace", help="a checkpoint's activations on one input, and what every unit holds")
    sp.add_argument("checkpoint", help="a checkpoint directory (lsrl compile -o DIR)")
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help='tokens separated by spaces, components by commas: "1 0 1" or "0.5,1 2,3"')
    src.add_argument("--input-file", help="a file holding the tokens in the same format")
    sp.add_argument("--units", action="store_true", help="also list every unit of every layer and what it holds")
    sp.add_argument("-o", "--output", help="save the activations (safetensors) and unit labels (.units.json)")
    sp.set_defaults(fn=cmd_trace)

    sp = sub.add_parser("dataset", help="inputs, outputs and every layer's activations of a checkpoint, in shards")
    sp.add_argument("checkpoint", help="a checkpoint directory (lsrl compile -o DIR)")
    sp.add_argument("--n", type=_at_least(1), required=True, help="number of sequences")
    sp.add_argument("--length", type=_at_least(1), required=True, help="sequence length")
    sp.add_argument("-o", "--output", required=True, help="output directory")
    sp.add_argument("--program", help="the .lsrl source it was compiled from: adds the interpreter's values")
    sp.add_argument("-D", dest="define", action="append", default=[], metavar="NAME=VALUE",
                    help="the params it was compiled with (with --program)")
    sp.add_argument("--seed", type=_at_least(0), default=0)
    sp.add_argument("--shard-size", type=_at_least(1), default=256, help="sequences per shard (default 256)")
    sp.add_argument("--generator", metavar="NAME", help="the input generator: a registered one (domain, tok2tok, "
                    "vec2vec, dyck1, ...) or module:function (default: the one the program names, else domain)")
    sp.add_argument("--generator-arg", action="append", default=[], metavar="NAME=VALUE",
                    help="an argument for the generator (repeatable); overrides the program's for its generator")
    sp.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    sp.set_defaults(fn=cmd_dataset)

    sp = sub.add_parser("graph", help="draw the causal graph (IR) or the compiled layer stack")
    compiling(sp)
    sp.add_argument("--what", choices=["ir", "layers"], default="ir", help="the IR (default) or the layers")
    sp.add_argument("--format", choices=["dot", "svg", "png"], default="dot", help="svg/png need Graphviz")
    sp.add_argument("-o", "--output", required=True)
    sp.add_argument("--json", help="also write the causal graph and its unit correspondence as JSON")
    sp.set_defaults(fn=cmd_graph)

    sp = sub.add_parser("obfuscate", help="compile (or take --checkpoint) and save with the units permuted and "
                        "scaled (and with --basis, a change of basis): the same function, the manifest in sync")
    compiling(sp)
    sp.add_argument("--checkpoint", metavar="DIR", help="obfuscate this checkpoint (compiled from FILE)")
    sp.add_argument("--seed", type=_at_least(0), default=0)
    sp.add_argument("--dead", type=_at_least(0), default=1, help="extra dead units per layer (default 1)")
    sp.add_argument("--noise", type=_noise, default=0.0, help="relative Gaussian weight noise (not function-"
                    "preserving: the degradation is measured and reported)")
    sp.add_argument("--basis", choices=["none", "unimodular", "orthogonal"], default="none",
                    help="also change the basis of the linear coordinates (lrnn: every stage's outputs; mamba, hawk: "
                    "the residual stream): unimodular (integer M and M^-1: exact, refused with E0707 where it "
                    "cannot stay exact) or orthogonal (float: inexact, the promise restated from a measured "
                    "error); rnn, gru and lstm have none (reported). Default none")
    sp.add_argument("--basis-rounds", type=_at_least(1), default=None,
                    help="unimodular: rounds of 2x2 mixing (default ceil(log2 width): every unit mixes every other; "
                    "fewer keep the sums smaller)")
    sp.add_argument("-o", "--output", required=True, help="checkpoint directory to write")
    sp.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    sp.set_defaults(fn=cmd_obfuscate)

    sp = sub.add_parser("export", help="write a mamba or hawk checkpoint as a transformers MambaForCausalLM or "
                        "RecurrentGemmaForCausalLM directory")
    sp.add_argument("checkpoint", help="a checkpoint directory (lsrl compile --backend mamba|hawk --dtype float32)")
    sp.add_argument("--format", choices=["hf"], required=True, help="hf: loadable with from_pretrained")
    sp.add_argument("-o", "--output", required=True, help="directory to write")
    sp.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    sp.set_defaults(fn=cmd_export)

    sp = sub.add_parser("zoo", help="sample random programs and compile each on every backend, with a table")
    sp.add_argument("--n", type=_at_least(1), required=True, help="number of programs")
    sp.add_argument("--size", type=_at_least(1), default=6, help="let-bindings per program (default 6)")
    sp.add_argument("--backends", help="comma-separated (default: every registered backend)")
    sp.add_argument("--seed", type=_at_least(0), default=0)
    sp.add_argument("--no-checkpoints", action="store_true", help="write only the sources and the table")
    sp.add_argument("-o", "--output", required=True, help="output directory")
    sp.add_argument("--force", action="store_true", help="write into an existing non-empty folder")
    sp.set_defaults(fn=cmd_zoo)

    sp = sub.add_parser("run", help="run the reference interpreter on one input sequence")
    common(sp)
    src = sp.add_mutually_exclusive_group(required=True)
    src.add_argument("--input", help='tokens separated by spaces, components by commas: "1 0 1" or "0.5,1 2,3"')
    src.add_argument("--input-file", help="a file holding the tokens in the same format (`-`: standard input)")
    sp.add_argument("--exact", action="store_true", help="exact rational arithmetic")
    sp.add_argument("--trace", nargs="*", metavar="NAME", default=None,
                    help="also print named values per step (all of them, or the NAMEs given)")
    sp.set_defaults(fn=cmd_run)
    return p


def main(argv: list[str] | None = None) -> int:
    args = None
    try:
        args = build_parser().parse_args(argv)
        return args.fn(args)
    except UsageError as exc:
        print(exc.render(SOURCES), file=sys.stderr)
        return 2
    except LsrlError as exc:
        if getattr(args, "json", None) is True:  # a machine reader gets the diagnostics as data too
            _print_json({"file": getattr(args, "file", None), "ok": False,
                         "diagnostics": [d.to_json() for d in exc.diagnostics]})
        print(exc.render(SOURCES), file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:  # the reader went away (`lsrl ... | head`): stop quietly, as other tools do
        import os

        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # no second error at interpreter exit
        return 0


if __name__ == "__main__":
    sys.exit(main())
