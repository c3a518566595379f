"""Differential fuzzing, long tier: sampled programs on every backend, and mutated sources through the front end.

    python -m bench.fuzz --n 10000 --sources 2000 --mutants 2000      # writes docs/reliability.md

Generated tier: `lsrl.interpretability.sampler.sample_program` sources (every construct it knows), compiled
on every registered backend; each model is run against the interpreter on random inputs of length 48 and
must stay within its promise, or the backend must refuse with a diagnostic. Outcomes per backend: ok,
refused (by code), mismatch (beyond the promise), internal error (any other exception).

Construct tier: hypothesis-generated source text over every construct of docs/language.md
(tests/source_strategies.py), each checked on every backend the same way.

Mutation tier: shipped programs and sampled sources with tokens deleted, duplicated or swapped, huge
numbers, deep nesting and odd unicode spliced in, run through `lsrl check` (parse and elaborate): each must
end in a clean diagnostic (exit 1 with a code) or be accepted (exit 0), never an internal error.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import random
import re
import signal
import time
from collections import Counter
from pathlib import Path

import numpy as np
import torch
from lsrl.backends import BACKENDS

from bench.common import table
from lsrl.cli import main as cli_main
from lsrl.compiling import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.frontend.elaborate import compile_source
from lsrl.interpretability.sampler import sample_program
from lsrl.ir.interpreter import interpret
from lsrl.verifying import exact_reference

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "reliability.md"
LENGTH = 48
HANG_SECONDS = 20
SPLICES = ["10 ** 10 ** 10", "(" * 300 + "1" + ")" * 300, "-" * 500 + "1", "x" * 5000, "\u00e9\u2603\U0001F600",
           "999999999999999999999999999999", "[" * 200 + "]" * 200, "\x00", "{", "}", "<-", "state", "@", "1e309",
           "cos(1 / 2) * 10 ** 400 * ", "1e300 * cos(1) * 1e300 * ", "10 ** 400 * "]  # floats past float64's range


def generated(n: int, seed: int) -> Counter:
    rng = np.random.default_rng(seed)
    out: Counter = Counter()
    for i in range(n):
        source = sample_program(rng, size=int(rng.integers(3, 10)))
        _on_every_backend(compile_source(source, f"fuzz{i}.lsrl"), i, out)
    return out


def constructs(n: int, seed: int) -> Counter:
    """`n` hypothesis-generated sources over every construct (tests/source_strategies.py), deterministic for
    a seed, each on every backend as in `generated`."""
    import sys

    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as fix_seed
    from hypothesis import strategies as st

    sys.path.insert(0, str(ROOT / "tests"))
    from source_strategies import sources

    out: Counter = Counter()

    @fix_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(sources(), st.integers(0, 2**16))
    def one(source: str, i: int) -> None:
        _on_every_backend(compile_source(source, "src.lsrl"), i, out)

    one()
    return out


def _on_every_backend(prog, i: int, out: Counter) -> None:
    """Compile on every registered backend and run against the interpreter (random inputs of LENGTH): ok,
    refused (by code), MISMATCH (beyond the promise, judged against the exact interpreter where the float64
    one disagrees, as verify does) or INTERNAL (any other exception)."""
    x = prog.input.sample(np.random.default_rng(i), 2, LENGTH)
    ref, exact = interpret(prog.reference_graph, x).output, None
    for backend in sorted(BACKENDS):
        try:
            c = compile_program(prog, CompileOptions(backend, max_len=LENGTH))
            allowed = c.promise().output.allowed
            with torch.no_grad():
                y = c.module(torch.tensor(x)).numpy()
            err = float(np.abs(y - ref).max(initial=0.0))
            if err > allowed:
                exact = exact_reference(prog, x).output if exact is None else exact
                err = float(np.abs(y - exact).max(initial=0.0))
            out[(backend, "ok" if err <= allowed else "MISMATCH")] += 1
        except LsrlError as exc:
            out[(backend, f"refused {exc.diagnostics[0].code}")] += 1
        except Exception as exc:  # noqa: BLE001 - what the fuzzer is for
            out[(backend, f"INTERNAL {type(exc).__name__}")] += 1


def mutate(source: str, rnd: random.Random) -> str:
    tokens = re.findall(r"\s+|\w+|[^\w\s]", source)
    for _ in range(rnd.randint(1, 3)):
        i = rnd.randrange(len(tokens))
        op = rnd.choice(["delete", "duplicate", "swap", "splice"])
        if op == "delete":
            del tokens[i]
        elif op == "duplicate":
            tokens.insert(i, tokens[i])
        elif op == "swap":
            j = rnd.randrange(len(tokens))
            tokens[i], tokens[j] = tokens[j], tokens[i]
        else:
            tokens.insert(i, rnd.choice(SPLICES))
    return "".join(tokens)


class _Hang(Exception):
    pass


def _on_alarm(signum, frame):
    raise _Hang


def mutated(n: int, seed: int, tmp: Path) -> Counter:
    """Each source through `lsrl check`, stopped after HANG_SECONDS (counted as a hang, the source kept as
    bench/hang-N.lsrl; one ending in an internal error is kept as bench/internal-N.lsrl)."""
    signal.signal(signal.SIGALRM, _on_alarm)
    rnd = random.Random(seed)
    rng = np.random.default_rng(seed)
    bases = [p.read_text() for p in sorted((ROOT / "programs").glob("*.lsrl"))]
    out: Counter = Counter()
    for i in range(n):
        base = rnd.choice(bases) if i % 2 else sample_program(rng)
        path = tmp / f"m{i}.lsrl"
        path.write_text(mutate(base, rnd), encoding="utf-8")
        err = io.StringIO()
        signal.alarm(HANG_SECONDS)
        try:
            with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(err):
                rc = cli_main(["check", str(path)])
            code = re.search(r"error\[(E\d+)\]", err.getvalue())
            out["accepted" if rc == 0 else f"diagnostic {code.group(1)}" if rc == 1 and code else f"rc {rc}"] += 1
        except _Hang:
            out["INTERNAL hang"] += 1
            (ROOT / "bench" / f"hang-{i}.lsrl").write_text(path.read_text())
        except Exception as exc:  # noqa: BLE001
            out[f"INTERNAL {type(exc).__name__}"] += 1
            (ROOT / "bench" / f"internal-{i}.lsrl").write_text(path.read_text())  # kept to reproduce it
        finally:
            signal.alarm(0)
    return out


def _backend_section(title: str, counts: Counter) -> list[str]:
    bad = sum(c for (_, o), c in counts.items() if o.startswith(("INTERNAL", "MISMATCH")))
    return [title, "", f"Internal errors and mismatches beyond the promise: **{bad}**.", "",
            table(["backend", "outcome", "programs"], [[b, o, c] for (b, o), c in sorted(counts.items())]), ""]


def report(gen: Counter, src: Counter, mut: Counter, n: int, s: int, m: int, seconds: float) -> str:
    mrows = [[outcome, count] for outcome, count in sorted(mut.items(), key=lambda kv: -kv[1])]
    internal_m = sum(c for o, c in mut.items() if o.startswith(("INTERNAL", "rc")))
    return "\n".join([
        "# Reliability", "",
        f"Recorded by `python -m bench.fuzz --n {n} --sources {s} --mutants {m}` ({time.strftime('%Y-%m-%d')}, "
        f"{seconds:.0f} s; "
        "the module docstring says what each tier does). The fast tier of the same checks runs in the default "
        "test suite (`tests/test_fuzz_backends.py`, `tests/test_sampler.py`), together with "
        "hypothesis-generated *source text* over every construct of `docs/language.md` "
        "(`tests/source_strategies.py`: params, finite and interval domains, states with identity, decay, "
        "shift, rotation, permutation and coupled transitions, functions, loops, comprehensions, ternaries, "
        "probes, nesting) on every registered backend, judged against the exact interpreter "
        "(`LSRL_FUZZ_EXAMPLES=N` runs N per backend).", "",
        *_backend_section(f"## Generated programs: {n} sampled sources x {len(BACKENDS)} backends", gen),
        *_backend_section(f"## Every construct: {s} hypothesis-generated sources x {len(BACKENDS)} backends", src),
        f"## Mutated sources through `lsrl check`: {m}", "",
        f"Internal errors (a traceback or an exit status other than 0/1): **{internal_m}**.", "",
        table(["outcome", "sources"], mrows), ""])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--n", type=int, default=10000)
    ap.add_argument("--sources", type=int, default=2000, help="hypothesis-generated sources over every construct")
    ap.add_argument("--mutants", type=int, default=2000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--no-write", action="store_true", help="print instead of writing docs/reliability.md")
    args = ap.parse_args()
    import tempfile

    t0 = time.time()
    gen = generated(args.n, args.seed)
    src = constructs(args.sources, args.seed)
    with tempfile.TemporaryDirectory() as tmp:
        mut = mutated(args.mutants, args.seed, Path(tmp))
    text = report(gen, src, mut, args.n, args.sources, args.mutants, time.time() - t0)
    if args.no_write:
        print(text)
    else:
        DOC.write_text(text)
        print(text)


if __name__ == "__main__":
    main()
