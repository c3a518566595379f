"""`lsrl verify` over every shipped program, registered backend and dtype (256 sequences of length 256 each),
and the share of exactly right tokens at every length up to max_len = 4096 in float32."""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from lsrl.backends import BACKENDS

from bench.common import table
from lsrl import LsrlError, interpret, load_program
from lsrl.compiling import DTYPES, CompileOptions, compile_program
from lsrl.guarantee.promise import USEFUL_REL
from lsrl.verifying import verify

ROOT = Path(__file__).resolve().parent.parent


# the programs with integer-valued outputs on integer inputs, for the exact-tokens table
DISCRETE = ("counter", "dyck1", "mod_counter", "more_ones", "parity", "running_max", "window_sum")
EXACT_LENGTH = 4096
EXACT_SAMPLES = 256
# fewer sequences for a (program, backend) too slow for the full count (none at present: with one torch
# thread, tok2tok on gru, the slowest row, takes ~20 s for 256 x 4096 tokens)
EXACT_SAMPLES_SLOW: dict[tuple[str, str], int] = {}


def backends() -> list[str]:
    return sorted(BACKENDS)


# ------------------------------------------------------------------------------------------ verify table

def verify_rows(samples: int = 256, length: int = 256, backends_: list[str] | None = None) -> list[list[object]]:
    rows = []
    for path in sorted(ROOT.glob("programs/*.lsrl")):
        prog = load_program(str(path))
        for backend in backends_ or backends():
            for dtype in ("float64", "float32"):
                opts = CompileOptions(backend, dtype=dtype)
                try:
                    r = verify(prog, opts, samples=samples, length=length)
                except LsrlError as exc:
                    rows.append([path.stem, backend, dtype, opts.length_limit, "-", "-", "-", "-",
                                 f"refused ({exc.diagnostics[0].code})"])
                    continue
                o = r.promise.output
                share = f"{100 * r.exact_share:.2f}%" if r.exact_share is not None else "-"
                bound = f"{o.allowed:.2g}" + (" (certified)" if r.promise.certified else "")
                exactness = o.exactness + (", exact after rounding" if o.exact_after_rounding else "")
                rows.append([path.stem, backend, dtype, r.promise.max_len, f"{r.max_abs:.2g}", bound, exactness,
                             share, _verdict(r)])
    return rows


def _verdict(r) -> str:
    if r.platform:
        return "FAIL (platform: " + "; ".join(r.platform) + ")"
    if not r.bounded:
        useless = [k for k in r.errors if not r.promise.outputs[k].useful(r.scales[k])]
        what = ", ".join(("output" if k == "output" else f"probe {k}") for k in useless)
        return f"no useful bound ({what})"
    if r.passed:
        return "pass"
    over = [k for k, e in r.errors.items() if e > r.promise.outputs[k].allowed]
    return "FAIL (" + ", ".join(("output" if k == "output" else f"probe {k}") for k in over) + ")"


VERIFY_LEGEND = f"""

Each row is `lsrl verify`: the compiled model against the float64 reference interpreter on 256 random
sequences from the program's declared input domain plus 4 edge-case sequences, all of length 256, with
every program's default parameters, measured 2026-12-06 (`python -m bench.bench_verify --section verify`).
"max_len" is the length the model's constants and its promise are made for: the default 4096 for every
program. "max abs err" is the largest
|model - reference| of the output; verify checks every probe too. "promised bound" is the output's proven
bound in that dtype plus the allowance for the float64 reference (`OutputPromise.allowed`: abs_bound +
reference_bound, propagated through the stages by `lsrl/guarantee/propagate.py`); "(certified)" marks a
model whose float arithmetic is proven exact in that dtype (integer weights and inputs, every partial sum
below 2^24 or 2^53: `lsrl/guarantee/certify.py`). "exactness" is the output's class (exact: exact in real
arithmetic, float rounding only; float-exact: an approximation whose truncation error is below half an
ulp, as in the gru/lstm small-signal tanh and saturated sigmoids; bounded: an approximation with a proven
error) and, where the output is proven integer-valued with a bound below 1/2, "exact after rounding".
"exact tokens" is the share of output tokens whose rounded value equals the reference, where the
reference's output is integer-valued ("-" otherwise). Verdict: "pass" when every output and probe is
within its bound, "FAIL" when one is not, "no useful bound" when the listed outputs' bounds say nothing
worth checking (`OutputPromise.useful`: 1/2 or more on an integer-valued output, {USEFUL_REL:g} of the value
scale or more on another), so verify refuses to pass whatever the measured error; "refused" names the
compiler's diagnostic. vec2vec reads its continuous query through cell edges `eps = 1e-6` wide: in float64
the bound is useful where the analysis resolves every step, and float32 is refused (E0708): float32 cannot
even hold the query that finely (its spacing near 1000 is 6e-5), and the latch's rounding is a hundred times
an edge (docs/backends.md, "Per program", has a float32 configuration that verifies). tok2tok is verified
with its default parameters (T = 3, gated = 1), as every program is."""


# ------------------------------------------------------------------------------------ exact-tokens table

def tok2tok_inputs(T: int, pairs: int, batch: int, seed: int, V: int = 10) -> np.ndarray:
    """Valid tok2tok prompts (the generator of tests/test_compiled_programs.py): a query, then `pairs`
    key/value pairs with distinct keys, one of which is the query (its position uniform among the pairs)."""
    rng = np.random.default_rng(seed)
    xs = []
    for _ in range(batch):
        keys = set()
        while len(keys) < pairs:
            keys.add(tuple(int(v) for v in rng.integers(0, V, T)))
        keys = list(keys)
        values = [tuple(int(v) for v in rng.integers(0, V, T)) for _ in keys]
        j = int(rng.integers(len(keys)))
        xs.append([*keys[j], *[t for k, v in zip(keys, values, strict=True) for t in (*k, *v)]])
    return np.array(xs, dtype=np.float64)[..., None]


def exact_inputs(name: str, prog, samples: int, length: int, seed: int) -> tuple[np.ndarray, str]:
    """Inputs for the exact-tokens table, and how they were drawn."""
    if name == "tok2tok":
        T = int(prog.params["T"])
        pairs = -(-(length - T) // (2 * T))  # enough whole pairs to reach `length`, the last one cut short
        return (tok2tok_inputs(T, pairs, samples, seed)[:, :length],
                f"key/value prompts, {pairs} pairs (last cut short)")
    rng = np.random.default_rng(seed)
    if name == "window_sum":  # declared domain [-1, 1]: its integers, so that the output is integer-valued
        return rng.integers(-1, 2, (samples, length, prog.input.dim)).astype(np.float64), "uniform on {-1, 0, 1}"
    return prog.input.sample(rng, samples, length), "uniform on the declared domain"


def exact_rows(length: int = EXACT_LENGTH, samples: int = EXACT_SAMPLES, batch: int = 64,
               backends_: list[str] | None = None) -> list[list[object]]:
    """Per program and backend, compiled in float32 at the default max_len: the share of positions t = 1..length
    whose rounded output equals the interpreter's rounded output for the prefix of length t (the row reports how
    far the interpreter's float64 output was from an integer: ~1e-16 for mod_counter's rotation, else 0)."""
    cases = [(name, {}) for name in DISCRETE] + [("tok2tok", {"T": 3, "gated": g}) for g in (1, 0)]
    rows = []
    for name, params in cases:
        prog = load_program(str(ROOT / f"programs/{name}.lsrl"), params)
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        x_all, how = exact_inputs(name, prog, samples, length, seed=0)
        ref = np.concatenate([interpret(prog.graph, x_all[s:s + batch]).output for s in range(0, samples, batch)])
        ref_int = np.round(ref)
        ref_off = float(np.abs(ref - ref_int).max())
        for backend in backends_ or backends():
            n = min(EXACT_SAMPLES_SLOW.get((name, backend), samples), samples)
            t0 = time.perf_counter()
            compiled = compile_program(prog, CompileOptions(backend, dtype="float32"))
            o = compiled.promise().output
            promised = ("exact after rounding" if o.exact_after_rounding else
                        f"bound {o.abs_bound:.2g}, output not proven integer" if o.abs_bound < 0.5 else
                        f"no useful bound ({o.abs_bound:.2g})")
            with torch.no_grad():
                y = np.concatenate([
                    compiled.module(torch.tensor(x_all[s:min(s + batch, n)], dtype=DTYPES["float32"]))
                    .double().numpy() for s in range(0, n, batch)])
            r = ref_int[:n]
            right = np.round(y) == r  # (n, length, dim)
            per_pos = right.all(axis=2)  # a position is right when every output component is
            wrong_at = np.flatnonzero(~per_pos.all(axis=0))
            rows.append([label, backend, f"{n} x {length}", how, promised,
                         f"{100 * per_pos.mean():.4f}%" if not per_pos.all() else "100%",
                         str(int(wrong_at[0]) + 1) if len(wrong_at) else "-",
                         f"{float(np.abs(y - ref[:n]).max()):.2g}", f"{ref_off:.1g}",
                         f"{time.perf_counter() - t0:.0f}"])
    return rows


EXACT_LEGEND = f"""

Each model is compiled in float32 at the default max_len {EXACT_LENGTH} and run on whole sequences of
length {EXACT_LENGTH}; the output at position t is the program's answer for the prefix of length t, so one
sequence checks every length 1..{EXACT_LENGTH}. "exact tokens" is the share of (sequence, position) pairs
whose rounded model output equals the float64 reference interpreter's output; "first wrong length" is the
shortest prefix length at which some sequence is wrong ("-": none). "reference off-integer" is the
interpreter's own largest distance from an integer (nonzero only for mod_counter, whose rotation state is
irrational; there the reference is rounded too). "float32 promise" is what `Compiled.promise("float32")`
proves about the output at max_len {EXACT_LENGTH}: "exact after rounding" (an integer-valued output
within less than 1/2), a bound below 1/2 on an output that range analysis does not prove integer-valued
(mod_counter's irrational rotation; window_sum, whose declared domain is [-1, 1] while this table feeds it
its integers), or no useful bound. tok2tok inputs are valid key/value prompts (query, then
key ++ value pairs with distinct keys, one matching the query, at a uniformly random pair), as in
`tests/test_compiled_programs.py`, with as many pairs as reach {EXACT_LENGTH} tokens. "s" is the seconds for
the row (compile, promise and model run, not the interpreter), with one torch thread: on this shared 2-core
VM, two threads next to another busy process slowed the gru model up to ~100-fold (torch's CPU `nn.GRU`
and `nn.LSTM` step each of their ~20 layers through the tokens one at a time, thousands of small steps that
each wait for both threads)."""


def run(samples: int = 256, length: int = 256) -> str:
    v = table(["program", "backend", "dtype", "max_len", "max abs err", "promised bound", "exactness",
               "exact tokens", "verdict"], verify_rows(samples, length)) + VERIFY_LEGEND
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        e = table(["program", "backend", "sequences x length", "inputs", "float32 promise", "exact tokens",
                   "first wrong length", "max abs err", "reference off-integer", "s"], exact_rows())
    finally:
        torch.set_num_threads(threads)
    return "\n\n".join([v, f"### Exact tokens at every length up to max_len (float32)\n\n{e}{EXACT_LEGEND}"])


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--section", choices=["verify", "exact", "all"], default="all")
    ap.add_argument("--samples", type=int, default=EXACT_SAMPLES, help="exact table: sequences per row")
    ap.add_argument("--length", type=int, default=EXACT_LENGTH, help="exact table: sequence length")
    ap.add_argument("--backend", action="append", help="only these backends")
    a = ap.parse_args()
    if a.section == "verify":
        print(table(["program", "backend", "dtype", "max_len", "max abs err", "promised bound", "exactness",
                     "exact tokens", "verdict"], verify_rows(backends_=a.backend)))
    elif a.section == "exact":
        torch.set_num_threads(1)
        print(table(["program", "backend", "sequences x length", "inputs", "float32 promise", "exact tokens",
                     "first wrong length", "max abs err", "reference off-integer", "s"],
                    exact_rows(a.length, a.samples, backends_=a.backend)))
    else:
        print(run())
