"""Compile time, parameter count and compiled throughput for tok2tok and vec2vec on every registered backend,
beside the reference. The targets apply to `lrnn` and `rnn`; `gru` and `lstm` are reported as measured."""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch
from lsrl.backends import BACKENDS, get_backend

from bench.bench_interpreter import tok2tok_batch
from bench.common import best_of, best_of_rounds, table
from lsrl import LsrlError, interpret, load_program
from lsrl.compiling import DTYPES, CompileOptions, compile_program, range_facts
from lsrl.frontend.parser import parse
from lsrl.lowering import lower
from lsrl.passes import optimize

ROOT = Path(__file__).resolve().parent.parent

# From ../shared/reference/reference_figures.md (reference LSRL @ 2675cd1, 2-core x86-64): seconds and
# parameter counts after simplify(). Its tok2tok seconds time simplify() of an already-built DAG; its
# vec2vec seconds include building the program ("setup + simplify").
REFERENCE = {
    ("tok2tok", 2, 1): (4.79, 60_790_615), ("tok2tok", 3, 1): (8.44, 110_832_237),
    ("tok2tok", 5, 1): (14.61, 255_670_057), ("tok2tok", 8, 1): (30.40, 584_813_227),
    ("tok2tok", 3, 0): (27.01, 319_390_206_845), ("vec2vec", 0, 1): (0.46, 65_301),
    ("vec2vec", 0, 0): (0.63, 386_310),
}
REFERENCE_INCLUDES_SETUP = {"tok2tok": False, "vec2vec": True}
# best-of counts: this VM has slow spells of seconds, so more runs give the least-disturbed one a chance
COMPILE_REPEAT, THROUGHPUT_REPEAT = 15, 5
# the backends the targets are set for; the others (gru, lstm) are measured with fewer runs: they have no
# target, and their compiles (and torch.nn.GRU / nn.LSTM on the CPU) are several times slower
TARGETED = ("lrnn", "rnn")
OTHER_COMPILE_REPEAT, OTHER_THROUGHPUT_REPEAT = 5, 3


def backends() -> list[str]:
    """Every registered backend, the targeted ones first."""
    return [*TARGETED, *sorted(set(BACKENDS) - set(TARGETED))]


def _compile_all(cases: list[tuple[str, dict, str]], repeat: int) -> list:
    """Per (path, params, backend): (compiled program, best seconds from source (parse, elaborate), best
    seconds from the elaborated IR (optimise, range analysis, lower, emit)), or the LsrlError it gives.
    The first compile of each is an untimed warm-up."""
    out, fns = [], []
    for path, params, backend in cases:
        prog = load_program(path, params)
        try:
            out.append(compile_program(prog, CompileOptions(backend)))
        except LsrlError as exc:  # e.g. vec2vec gated=1 on rnn: E0701, by design
            out.append(exc)
            continue
        fns += [lambda p=path, k=params: load_program(p, k),
                lambda g=prog, b=backend: compile_program(g, CompileOptions(b))]
    secs = iter(best_of_rounds(fns, repeat))
    return [res if isinstance(res, LsrlError) else (res, next(secs), next(secs)) for res in out]


def compile_rows(names: list[str] | None = None) -> tuple[list[list[object]], list[str]]:
    """Table rows, and one line per target (compile >= 100x the reference, tok2tok parameters <= 1/1000) for
    the targeted backends; the other backends' rows are measured with OTHER_COMPILE_REPEAT runs."""
    names = names or backends()
    rows, speedups, ratios, measured = [], {}, [], {}
    cases = [("tok2tok", {"T": T, "gated": g}, (T, g)) for g in (1, 0) for T in (2, 3, 5, 8)]
    cases += [("vec2vec", {"gated": g}, (0, g)) for g in (1, 0)]
    results = {}
    for group, repeat in (([b for b in names if b in TARGETED], COMPILE_REPEAT),
                          ([b for b in names if b not in TARGETED], OTHER_COMPILE_REPEAT)):
        runs = [(str(ROOT / f"programs/{name}.lsrl"), params, b) for name, params, _ in cases for b in group]
        results.update(zip([(name, str(params), b) for name, params, _ in cases for b in group],
                           _compile_all(runs, repeat), strict=True))
    for name, params, key in cases:
        ref = REFERENCE.get((name, *key))
        for backend in names:
            label = f"{name} " + " ".join(f"{k}={v}" for k, v in params.items())
            res = results[(name, str(params), backend)]
            if isinstance(res, LsrlError):
                rows.append([label, backend, f"does not compile ({res.diagnostics[0].code})"] + ["-"] * 6)
                continue
            compiled, source, from_ir = res
            total = source + from_ir
            n = compiled.parameter_count()
            ours = total if REFERENCE_INCLUDES_SETUP[name] else from_ir  # like for like
            if ref and backend not in TARGETED:
                measured.setdefault((backend, name), []).append((ref[0] / ours, ref[1] / n))
            if ref and backend in TARGETED:
                speedups.setdefault((backend, name), []).append((ref[0] / ours, label))
                if name == "tok2tok":
                    ratios.append((ref[1] / n, f"{label} {backend}"))
            rows.append([label, backend, f"{total:.3f}", f"{from_ir:.3f}", f"{n:,}",
                         f"{ref[0]:.2f}" if ref else "-", f"{ref[0] / ours:,.0f}x" if ref else "-",
                         f"{ref[1]:,}" if ref else "-", f"1/{ref[1] / n:,.0f}" if ref else "-"])
    lines = [f"- compile >= 100x the reference, {name} on `{b}`: " + _verdict(min(v), 100, "x") +
             f" ({len(v)} case{'s' * (len(v) > 1)}: {', '.join(f'{x:,.0f}x' for x, _ in v)})"
             for (b, name), v in speedups.items()]
    if ratios:
        worst = min(ratios)
        lines.append(f"- tok2tok parameters <= 1/1000 of the reference: worst 1/{worst[0]:,.0f} ({worst[1]}): "
                     + ("met" if worst[0] >= 1000 else "NOT met"))
    for (b, name), v in measured.items():  # no target: the range, for the record
        x, r = [f for f, _ in v], [q for _, q in v]
        lines.append(f"- `{b}` {name}, no target: compile {min(x):,.0f}x to {max(x):,.0f}x the reference, "
                     f"parameters 1/{min(r):,.0f} to 1/{max(r):,.0f} of it ({len(v)} case{'s' * (len(v) > 1)})")
    return rows, lines


def _verdict(value_label: tuple[float, str], target: float, unit: str) -> str:
    value, label = value_label
    return f"{'met' if value >= target else 'NOT met'}, worst {value:,.0f}{unit} ({label})"


def throughput_rows(batch: int = 256, repeat: int = THROUGHPUT_REPEAT,
                    names: list[str] | None = None) -> tuple[list[list[object]], list[str]]:
    """Table rows, and the compiled-throughput target line (>= 1000x the reference's ~100 tokens/s, for the
    targeted backends; the others are timed with OTHER_THROUGHPUT_REPEAT runs and have no target)."""
    rows, rates, fns, slow = [], [], [], []
    path = str(ROOT / "programs/tok2tok.lsrl")
    x = tok2tok_batch(3, 20, batch)
    tokens = x.shape[0] * x.shape[1]
    for gated in (1, 0):
        prog = load_program(path, {"T": 3, "gated": gated})
        reference = np.round(interpret(prog.graph, x).output[:, -3:])  # the float64 reference is off by ~1e-14
        rows.append([f"tok2tok T=3 gated={gated}", "interpreter", "float64", None, True])
        fns.append(lambda prog=prog: interpret(prog.graph, x))
        slow.append(False)
        for backend in names or backends():
            for dtype in ("float32", "float64"):
                module = compile_program(prog, CompileOptions(backend, dtype=dtype)).module
                xt = torch.tensor(x, dtype=DTYPES[dtype])
                with torch.no_grad():
                    ok = np.array_equal(np.round(module(xt).double().numpy()[:, -3:]), reference)
                targeted = backend in TARGETED
                rows.append([f"tok2tok T=3 gated={gated}", backend, dtype,
                             f"T=3 gated={gated} {backend} {dtype}" if targeted else None, ok])
                fns.append(torch.no_grad()(lambda m=module, xt=xt: m(xt)))
                slow.append(not targeted)
    # the untargeted backends' runs take a fraction of the rounds (they are the slow ones on the CPU)
    secs = best_of_rounds([f for f, s in zip(fns, slow, strict=True) if not s], repeat)
    secs_slow = best_of_rounds([f for f, s in zip(fns, slow, strict=True) if s], min(repeat, OTHER_THROUGHPUT_REPEAT))
    it, it_slow = iter(secs), iter(secs_slow)
    out = []
    for (label, runs_on, dtype, rate_label, ok), s in zip(rows, slow, strict=True):
        t = next(it_slow) if s else next(it)
        if rate_label is not None:
            rates.append((tokens / t / 100, rate_label))
        out.append([label, runs_on, dtype, f"{tokens / t:,.0f}",
                    f"{tokens / t / 100:,.0f}x" + ("" if ok else " (WRONG)")])
    return out, [f"- compiled throughput >= 1000x the reference's ~100 tokens/s, on "
                 f"{' and '.join(f'`{b}`' for b in TARGETED)}: {_verdict(min(rates), 1000, 'x')}"] if rates else []


def run() -> str:
    torch.set_num_threads(2)
    rows, targets = compile_rows()
    c = table(["program", "backend", "source -> weights s", "IR -> weights s", "parameters", "reference s",
               "speed-up (like for like)", "reference parameters", "ours / reference"], rows)
    others = [b for b in backends() if b not in TARGETED]
    c += ("\n\nThe reference's tok2tok seconds time `simplify()` of an already-built DAG, so they are compared "
          "with IR -> weights; its vec2vec seconds include building the program, so they are compared with "
          f"source -> weights. The targets below are set for {' and '.join(f'`{b}`' for b in TARGETED)}; "
          f"{' and '.join(f'`{b}`' for b in others)} (stacks of plain `torch.nn.GRU` / `torch.nn.LSTM` layers) "
          f"have no target and are reported as measured, each compile time the best of {OTHER_COMPILE_REPEAT} "
          f"runs instead of {COMPILE_REPEAT} (their compiles take longer, and so would the benchmark).")
    rows, more = throughput_rows()
    t = table(["program", "runs on", "dtype", "tokens/s (batch 256 x 123)", "vs reference ~100 tok/s"], rows)
    t += (f"\n\nEach rate is the best of {THROUGHPUT_REPEAT} runs ({OTHER_THROUGHPUT_REPEAT} for "
          f"{' and '.join(f'`{b}`' for b in others)}, which have no throughput target), on the CPU with 2 torch "
          "threads. A tok2tok T=3 model is about 20 layers on every backend; torch's CPU `nn.GRU` and `nn.LSTM` "
          "kernels step each layer through the tokens one at a time, and are markedly slower in float64.")
    return "\n\n".join([c, t, "Targets (computed from the tables above):\n\n" + "\n".join(targets + more),
                        why_not(parse_seconds("vec2vec"), rnn_phases())])


def parse_seconds(name: str, repeat: int = 20) -> float:
    """Best-of seconds for parsing a shipped program's source alone (Lark parse and AST, no elaboration)."""
    path = ROOT / f"programs/{name}.lsrl"
    text = path.read_text()
    return best_of(lambda: parse(text, str(path)), repeat)


def rnn_phases(T: int = 2, repeat: int = COMPILE_REPEAT) -> dict[str, float]:
    """Best-of seconds of each phase of a tok2tok `rnn` compile from the IR, and of building its torch module."""
    c = compile_program(load_program(str(ROOT / "programs/tok2tok.lsrl"), {"T": T, "gated": 1}), CompileOptions("rnn"))
    backend = get_backend("rnn")
    names = ["passes", "range analysis", "lowering", "emission", "torch modules"]
    fns = [lambda: optimize(c.program.graph), lambda: range_facts(c.graph, c.program, None),
           lambda: lower(c.graph, backend.target.template),
           lambda: backend.emit(c.graph, c.stack, c.facts, DTYPES["float64"]),
           lambda: backend.build_module(c.emitted.config)]
    return dict(zip(names, best_of_rounds(fns, repeat), strict=True))


def why_not(vec2vec_parse: float, phases: dict[str, float]) -> str:
    budget = REFERENCE[("vec2vec", 0, 1)][0] / 100
    ms = {k: f"{v * 1000:.0f} ms" for k, v in phases.items()}
    return f"""Where a target is missed or tight, and why:

- `rnn` compile is the tightest. Plain ReLU-RNN layers can only realise a product when one factor is
  provably 0/1 and the other bounded, and a value takes one unit instead of two only when it is provably
  non-negative, so compiling to `rnn` also runs the exact range analysis (`docs/ranges.md`) over every
  value, and then the exact RNN weight algebra and one `torch.nn.RNN` per stage. Without the analysis
  tok2tok's gates fail (E0701) and the model grows. It is a fixed cost the small programs feel most, so
  the smallest tok2tok sits closest to the target: 100x allows 48 ms at T = 2, and a T = 2 compile
  spends {ms["passes"]} in the passes, {ms["range analysis"]} in range analysis, {ms["lowering"]} lowering
  and {ms["emission"]} emitting 20 layers (of which {ms["torch modules"]} is torch constructing the
  modules), each the best of {COMPILE_REPEAT} runs.
  The reference has no such step: its `simplify()` produces a linear-RNN path graph, the counterpart of
  our `lrnn` output, which is the like-for-like comparison.
- `vec2vec` cannot meet 100x with this front end. The reference builds and simplifies this 17-token,
  ~20-node program in 0.46-0.63 s, so 100x allows {budget * 1000:.1f} ms from source to weights; parsing its
  source alone (about 330 tokens, with Lark, which the design fixes for the grammar) takes {vec2vec_parse * 1000:.1f} ms
  (best of 20; {vec2vec_parse / budget:.0%} of that budget), before elaboration, the passes, lowering and
  emission. What remains is fixed per-program cost in Python. We propose taking vec2vec out of the 100x
  target and reporting it as measured.
- `gru` and `lstm` have no targets. Their constructions go through gates (a GRU layer carries three
  weight blocks per unit, an LSTM layer four, and a GRU switch takes two units), so their models are larger than
  `rnn`'s and their compiles slower; the ranges are in the last lines of the targets above.
- Noise. This is a shared 2-core VM whose speed drifts by tens of percent, in spells of seconds, so
  ratios near a target can land on either side of it from run to run. Each figure is the best of
  {COMPILE_REPEAT} (compile) or {THROUGHPUT_REPEAT} (throughput) runs ({OTHER_COMPILE_REPEAT} and \
{OTHER_THROUGHPUT_REPEAT} for `gru` and `lstm`) with the garbage
  collector paused, taken in rounds over all cases rather than case by case, so that a slow spell costs a
  case one run, not all. Another busy process hurts two-thread torch runs most: while one ran beside it, a
  float32 `gru` tok2tok model was once ~100x slower than alone."""


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--backend", action="append", help="only the compile and throughput rows of these backends")
    a = ap.parse_args()
    if a.backend:
        print(table(["program", "backend", "source -> weights s", "IR -> weights s", "parameters", "reference s",
                     "speed-up (like for like)", "reference parameters", "ours / reference"],
                    compile_rows(a.backend)[0]))
        print()
        print(table(["program", "runs on", "dtype", "tokens/s (batch 256 x 123)", "vs reference ~100 tok/s"],
                    throughput_rows(names=a.backend)[0]))
    else:
        print(run())
