"""Input generators (lsrl.interpretability.generators) and the `generator` declaration: each generator's inputs
lie in the program's input domain and are well-formed (checked against plain-Python oracles of the programs'
protocols); the declaration parses, elaborates, round-trips through a checkpoint and gives located
diagnostics when wrong; `lsrl dataset` draws with the program's generator, `--generator domain` and a
`module:function` generator, deterministically for a seed."""

from __future__ import annotations

import itertools
import json
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from safetensors.numpy import load_file

from lsrl import compile_source, interpret, load_program, save_checkpoint
from lsrl.cli import main
from lsrl.compiling import CompileOptions, compile_program
from lsrl.diagnostics import LsrlError
from lsrl.frontend.parser import parse
from lsrl.frontend.unparse import unparse
from lsrl.interpretability import build_dataset
from lsrl.interpretability import generators as G
from lsrl.program import GeneratorSpec
from lsrl.runtime.checkpoint import CONFIG_FILE, load, load_config, recorded_generator

ROOT = Path(__file__).parent.parent
TOK2TOK = str(ROOT / "programs/tok2tok.lsrl")
SMALL = {"T": 2, "V": 4}  # tok2tok's params for these tests


def in_domain(x: np.ndarray, prog) -> bool:
    dom = prog.input.domain
    if dom.kind == "interval":
        return bool(np.all((x >= float(dom.values[0])) & (x <= float(dom.values[1]))))
    return bool(np.isin(x, [float(v) for v in dom.values]).all())


# ---------------------------------------------------------------- oracles (plain Python, from the protocols)


def tok2tok_oracle(tokens: list[int], T: int) -> tuple[list[int], int | None]:
    """Per step the answer of programs/tok2tok.lsrl's protocol, and the index of the matching pair (or None):
    the query, then key ++ value pairs; from the first token of the value whose key equals the query on,
    step t answers value[t mod T]; 0 before (and everywhere when no key matches)."""
    query, out, hit = tokens[:T], [0] * len(tokens), None
    pos, j = T, 0
    while pos + T <= len(tokens):  # every pair whose key is complete (its value may be cut off)
        key, value = tokens[pos:pos + T], tokens[pos + T:pos + 2 * T]
        if key == query:
            assert hit is None, "keys must be distinct"
            hit = j
            for t in range(pos + T, len(tokens)):
                out[t] = value[t % T]
        pos, j = pos + 2 * T, j + 1
    return out, hit


def dyck1_oracle(tokens: list[int]) -> list[tuple[int, int]]:
    """Per step (depth, valid): 0 is '(' and 1 is ')'; valid iff depth is 0 and was never negative."""
    depth, negative, out = 0, False, []
    for tok in tokens:
        depth += 1 if tok == 0 else -1
        negative = negative or depth < 0
        out.append((depth, int(depth == 0 and not negative)))
    return out


# ---------------------------------------------------------------- generators: well-formed inputs


@pytest.mark.parametrize("p_match", [0.0, 0.5, 1.0])
def test_tok2tok_prompts_are_answered_as_the_protocol_says(p_match):
    """Distinct keys; the query is one of the complete pairs' keys with probability p_match; the interpreter's
    outputs are the oracle's at every step (so the last T outputs are the matching key's value). Length 21 =
    query 2 + 4 pairs of 4 + a cut-off pair whose key is complete."""
    T = SMALL["T"]
    prog = load_program(TOK2TOK, SMALL)
    x = G.tok2tok(np.random.default_rng(1), 64, 21, T=T, V=4, p_match=p_match)
    assert x.shape == (64, 21, 1) and x.dtype == np.float64 and in_domain(x, prog)
    y = interpret(prog.graph, x).output[..., 0]
    hits = 0
    for row, got in zip(x[..., 0].astype(int).tolist(), y, strict=True):
        keys = [tuple(row[p:p + T]) for p in range(T, 21 - T + 1, 2 * T)]
        assert len(set(keys)) == len(keys)  # the cut-off pair's key is distinct too
        want, hit = tok2tok_oracle(row, T)
        assert hit is None or hit < 4  # only a complete pair's key is ever queried
        hits += hit is not None
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-6)
    assert {0.0: hits == 0, 1.0: hits == 64, 0.5: 16 < hits < 48}[p_match]


def test_tok2tok_lengths_too_short_for_a_pair_and_too_many_keys():
    x = G.tok2tok(np.random.default_rng(0), 3, 3, T=2, V=4)  # the query and one key token
    assert x.shape == (3, 3, 1)
    with pytest.raises(G.GeneratorArgError, match="distinct keys"):
        G.tok2tok(np.random.default_rng(0), 1, 2 + 4 * 5, T=2, V=2)  # 5 pairs, 4 keys exist


def test_pairs_reuse_the_tok2tok_layout():
    from lsrl.interpretability.pairs import tok2tok_pairs

    clean, bad, want, want_bad = tok2tok_pairs(2, 5, seed=3, pairs=3, vocab=4)
    for x, w in ((clean, want), (bad, want_bad)):
        for row, value in zip(x[..., 0].astype(int).tolist(), w.astype(int).tolist(), strict=True):
            answer, hit = tok2tok_oracle(row, 2)
            assert hit is not None and answer[-2:] == value


def test_vec2vec_queries_keep_clear_of_cell_edges_even_in_narrow_cells():
    """Cells narrower than 2 eps (eps = 1/8, N = 4) keep queries halfway between eps and the cell width below each
    boundary (the sampling used to search forever); eps at or above the cell width is refused, located."""
    x = G.vec2vec(np.random.default_rng(0), 200, 5, D=1, E=2, N=4, eps=1 / 8)
    below = np.arange(1, 5) / 4 - x[:, 0, :1]
    assert np.all((below <= 0) | (below >= 3 / 16)) and np.ptp(x[:, 0, 0]) > 0.5
    with pytest.raises(LsrlError, match="E0412") as err:
        load_program(str(ROOT / "programs/vec2vec.lsrl"), {"D": 1, "N": 4, "eps": Fraction(1, 4)})
    assert "below the cell width" in str(err.value) and ":40:" in str(err.value)


@pytest.mark.parametrize("length", [12, 7])
def test_vec2vec_prompts_are_the_grid_with_a_smooth_function(length):
    """Query, then the N^D cells in product order ([1/N, corner, f(centre)]), then zero tokens; the query is
    never just below a cell boundary; the interpreter answers f of the query's cell from that cell's step on."""
    D, E, N = 2, 2, 3
    prog = load_program(str(ROOT / "programs/vec2vec.lsrl"), {"D": D, "E": E, "N": N})
    assert prog.generator.python_args() == {"D": 2, "E": 2, "N": 3, "eps": 1e-6, "amplitude": 1}
    x = G.vec2vec(np.random.default_rng(2), 40, length, **prog.generator.python_args())
    assert x.shape == (40, length, 1 + D + E) and in_domain(x, prog)
    cells = list(itertools.product(range(N), repeat=D))[:length - 1]
    np.testing.assert_array_equal(x[:, 1:1 + len(cells), 0], 1 / N)
    corners = np.broadcast_to(np.array(cells) / N, (40, len(cells), D))
    np.testing.assert_array_equal(x[:, 1:1 + len(cells), 1:1 + D], corners)
    np.testing.assert_array_equal(x[:, 1 + len(cells):], 0)
    np.testing.assert_array_equal(x[:, 0, D:], 0)
    q = x[:, 0, :D]
    assert np.all((q >= 0) & (q < 1))
    assert not np.any((q[..., None] > np.arange(1, N + 1) / N - 2e-6) & (q[..., None] < np.arange(1, N + 1) / N))
    f = x[:, 1:1 + len(cells), 1 + D:]
    assert np.abs(f).max() <= 1 and np.std(f) > 0.05  # bounded by the amplitude, and not constant
    y = interpret(prog.graph, x).output
    for b in range(40):
        cell = tuple(max(i for i in range(N) if i / N <= qk) for qk in q[b])
        at = 1 + cells.index(cell) if cell in cells else length  # the step that holds the query's cell
        want = np.zeros((length, E))
        want[at:] = x[b, at, 1 + D:] if at < length else 0
        np.testing.assert_allclose(y[b], want, rtol=0, atol=1e-9)


@pytest.mark.parametrize("length", [12, 11])
def test_dyck1_strings_are_balanced_or_near_balanced(length):
    prog = load_program(str(ROOT / "programs/dyck1.lsrl"))
    assert prog.generator == GeneratorSpec("dyck1", {"p_balanced": Fraction(1, 2)}, prog.generator.span,
                                           prog.generator.name_span, prog.generator.arg_spans)
    rng = np.random.default_rng(4)
    balanced, near = G.dyck1(rng, 30, length, p_balanced=1), G.dyck1(rng, 60, length, p_balanced=0)
    kinds = set()
    for x, ok in ((balanced, True), (near, False)):
        assert x.shape[1:] == (length, 1) and in_domain(x, prog)
        y = interpret(prog.graph, x).output
        for row, got in zip(x[..., 0].astype(int).tolist(), y, strict=True):
            want = dyck1_oracle(row)
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-9)
            even = row[:length - length % 2]  # an odd length ends with one random bracket
            depth, valid = dyck1_oracle(even)[-1]
            assert valid == ok
            if not ok:  # one flip (ends at depth +-2) or a swapped top-level pair (ends at 0, goes negative)
                assert abs(depth) == 2 or (depth == 0 and min(d for d, _ in dyck1_oracle(even)) == -1)
                kinds.add(depth == 0)
    assert kinds == {True, False}


def test_balanced_brackets_are_dyck_words():
    rng = np.random.default_rng(0)
    for pairs in range(6):
        walk = G.balanced_brackets(rng, pairs)
        assert len(walk) == 2 * pairs and walk.sum() == 0 and (np.cumsum(walk) >= 0).all()


def test_domain_is_todays_uniform_sampling():
    prog = load_program(str(ROOT / "programs/more_ones.lsrl"))
    x = G.domain(np.random.default_rng(5), 4, 9, input=prog.input)
    np.testing.assert_array_equal(x, prog.input.sample(np.random.default_rng(5), 4, 9))


@pytest.mark.parametrize("name,args", [("tok2tok", SMALL), ("vec2vec", {"D": 1, "E": 2, "N": 4}), ("dyck1", {})])
def test_generators_are_deterministic_for_a_seed(name, args):
    fn = G.GENERATORS[name]
    a, b = fn(np.random.default_rng(7), 5, 13, **args), fn(np.random.default_rng(7), 5, 13, **args)
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, fn(np.random.default_rng(8), 5, 13, **args))


# ---------------------------------------------------------------- the declaration

SOURCE = """param T = 2
param V = 4
input x[1] in {0..V - 1}
generator tok2tok(T = T, V = V, p_match = 3/4)
output x
"""


def test_the_declaration_parses_elaborates_and_unparses():
    prog = compile_source(SOURCE, "g.lsrl")
    g = prog.generator
    assert g.name == "tok2tok" and g.args == {"T": Fraction(2), "V": Fraction(4), "p_match": Fraction(3, 4)}
    assert g.python_args() == {"T": 2, "V": 4, "p_match": 0.75} and str(g) == "tok2tok(T = 2, V = 4, p_match = 3/4)"
    assert (g.span.line, g.span.col, g.name_span.col, g.arg_spans["V"].col) == (4, 1, 11, 26)
    assert compile_source("input x[1]\noutput x\n").generator is None
    text = SOURCE + "generator my_pkg.gens:prompts(k = [1, 2], eps = 1e-3)\n"
    once = unparse(parse(text))
    assert "generator tok2tok(T = T, V = V, p_match = 3 / 4)" in once
    assert "generator my_pkg.gens:prompts(k = [1, 2], eps = 0.001)" in once
    assert unparse(parse(once)) == once


def test_module_generators_are_imported_only_when_used():
    prog = compile_source("input x[1]\ngenerator no_such_module_here:f(k = 1/2, v = [1, 2])\noutput x\n")
    assert prog.generator.name == "no_such_module_here:f"
    assert prog.generator.python_args() == {"k": 0.5, "v": [1, 2]}
    with pytest.raises(LsrlError) as exc:
        G.choose(prog.generator)
    assert exc.value.diagnostics[0].code == "E0411" and exc.value.diagnostics[0].span.line == 2


def test_the_declaration_round_trips_through_a_checkpoint(tmp_path):
    prog = compile_source(SOURCE, "g.lsrl")
    save_checkpoint(compile_program(prog, CompileOptions("lrnn", max_len=32)), tmp_path / "ck")
    cfg = load_config(tmp_path / "ck")
    assert cfg["program"]["generator"] == {"name": "tok2tok", "args": {"T": "2", "V": "4", "p_match": "3/4"}}
    back = recorded_generator(cfg)
    assert back.name == "tok2tok" and back.args == prog.generator.args
    # a checkpoint of a program naming none has no field, and one written before the field loads as before
    plain = compile_source("input x[1] in {0, 1}\noutput x\n", "p.lsrl")
    save_checkpoint(compile_program(plain, CompileOptions("lrnn", max_len=32)), tmp_path / "plain")
    assert "generator" not in load_config(tmp_path / "plain")["program"]
    cfg["program"].pop("generator")
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(cfg))
    assert recorded_generator(load_config(tmp_path / "ck")) is None and load(tmp_path / "ck") is not None
    sheet = build_dataset(tmp_path / "ck", tmp_path / "ds", n=2, length=5, progress=False)
    assert sheet["generator"] == {"name": "domain", "args": {}, "from": "default"}
    cfg["program"]["generator"] = {"name": "tok2tok", "args": {"T": {"x": 1}}}
    (tmp_path / "ck" / CONFIG_FILE).write_text(json.dumps(cfg))
    with pytest.raises(LsrlError, match="program.generator is malformed"):
        recorded_generator(load_config(tmp_path / "ck"))


# Golden diagnostics, as `lsrl check FILE` prints them (tests/test_diagnostics.py's style).
BAD = {
    "unknown": ("param T = 2\ninput x[1] in {0..9}\ngenerator tok2tk(T = T)\noutput x\n", """\
unknown.lsrl:3:11: error[E0411]: unknown generator `tok2tk`
   |
 3 | generator tok2tk(T = T)
   |           ^^^^^^
  = hint: did you mean `tok2tok`? registered generators: domain, dyck1, tok2tok, vec2vec
"""),
    "dotted": ("input x[1]\ngenerator my.gens(k = 1)\noutput x\n", """\
dotted.lsrl:2:11: error[E0411]: unknown generator `my.gens`
   |
 2 | generator my.gens(k = 1)
   |           ^^^^^^^
  = hint: a generator of your own is named `module:function`, e.g. `my_gens:prompts`
"""),
    "unknown_arg": ("input x[1] in {0, 1}\ngenerator dyck1(p_balance = 1/2)\noutput x\n", """\
unknown_arg.lsrl:2:17: error[E0412]: generator `dyck1` has no argument `p_balance`
   |
 2 | generator dyck1(p_balance = 1/2)
   |                 ^^^^^^^^^^^^^^^
  = hint: did you mean `p_balanced`? its arguments: p_balanced=0.5
"""),
    "missing": ("input x[1] in {0..3}\ngenerator tok2tok(V = 4)\noutput x\n", """\
missing.lsrl:2:1: error[E0412]: generator `tok2tok` is missing argument `T`
   |
 2 | generator tok2tok(V = 4)
   | ^^^^^^^^^^^^^^^^^^^^^^^^
  = hint: its arguments: T, V=10, p_match=1
"""),
    "positional": ("input x[1] in {0, 1}\ngenerator dyck1(1/2)\noutput x\n", """\
positional.lsrl:2:17: error[E0412]: generator arguments are passed by name
   |
 2 | generator dyck1(1/2)
   |                 ^^^
  = hint: write `NAME = VALUE`, e.g. `generator tok2tok(T = T, V = V)`
"""),
    "repeated": ("input x[1] in {0, 1}\ngenerator dyck1(p_balanced = 1/2, p_balanced = 1)\noutput x\n", """\
repeated.lsrl:2:35: error[E0412]: generator argument `p_balanced` is given twice
   |
 2 | generator dyck1(p_balanced = 1/2, p_balanced = 1)
   |                                   ^^^^^^^^^^^^^^
"""),
    "per_step": ("input x[1] in {0, 1}\ngenerator dyck1(p_balanced = x)\noutput x\n", """\
per_step.lsrl:2:30: error[E0412]: generator argument `p_balanced` must be a compile-time constant, got a \
per-step value of dim 1
   |
 2 | generator dyck1(p_balanced = x)
   |                              ^
  = hint: generator arguments are numbers fixed at compile time: params, constants
"""),
    "bad_value": ("param T = 0\ninput x[1] in {0..3}\ngenerator tok2tok(T = T, V = 4)\noutput x\n", """\
bad_value.lsrl:3:19: error[E0412]: generator `tok2tok`: `T` must be an integer >= 1, got 0
   |
 3 | generator tok2tok(T = T, V = 4)
   |                   ^^^^^
"""),
    "twice": ("input x[1] in {0, 1}\ngenerator dyck1()\ngenerator domain\noutput x\n", """\
twice.lsrl:3:1: error[E0413]: a program names at most one `generator`
   |
 3 | generator domain
   | ^^^^^^^^^^^^^^^^
  = note: the first `generator` is here (at twice.lsrl:2:1)
  = hint: keep one; `lsrl dataset --generator NAME` draws from another
"""),
    "nested": ("input x[1] in {0, 1}\nif 1 {\n  generator dyck1()\n}\noutput x\n", """\
nested.lsrl:3:3: error[E0407]: `generator` is allowed only at the top level of a program
   |
 3 |   generator dyck1()
   |   ^^^^^^^^^^^^^^^^^
  = hint: move the `generator` out of the function, loop or if-block
"""),
    "wrong_dim": ("input x[2] in {0, 1}\ngenerator dyck1()\noutput x\n", """\
wrong_dim.lsrl:2:1: error[E0414]: generator `dyck1` makes tokens of dim 1, but the program's input `x` has dim 2
   |
 2 | generator dyck1()
   | ^^^^^^^^^^^^^^^^^
  = note: `x` is declared here (at wrong_dim.lsrl:1:1)
  = hint: a generator makes tokens of one layout: check the arguments that size them, or name another generator
"""),
    "no_domain": ("input x[1]\ngenerator domain\noutput x\n", """\
no_domain.lsrl:2:1: error[E0414]: generator `domain` cannot make the program's input `x[1]`: it has no domain \
to draw from (declare one, e.g. `in {0..9}`)
   |
 2 | generator domain
   | ^^^^^^^^^^^^^^^^
"""),
}


@pytest.mark.parametrize("name", sorted(BAD))
def test_bad_declarations_give_located_diagnostics(name, tmp_path, capsys, monkeypatch):
    source, expected = BAD[name]
    (tmp_path / f"{name}.lsrl").write_text(source)
    monkeypatch.chdir(tmp_path)  # the diagnostics name the file relative to the working folder
    rc = main(["check", f"{name}.lsrl"])
    out = capsys.readouterr()
    assert rc == 1 and out.out == "" and out.err == expected


# ---------------------------------------------------------------- datasets


@pytest.fixture(scope="module")
def tok2tok_ck(tmp_path_factory):
    ck = tmp_path_factory.mktemp("tok2tok") / "ck"
    prog = load_program(TOK2TOK, SMALL)
    save_checkpoint(compile_program(prog, CompileOptions("lrnn", max_len=64)), ck)
    return prog, ck


def _shards(out: Path) -> dict[str, np.ndarray]:
    sheet = json.loads((out / "datasheet.json").read_text())
    shards = [load_file(str(out / s["file"])) for s in sheet["shards"]]
    return {k: np.concatenate([s[k] for s in shards]) for k in shards[0]}


def _dataset(ck, out, *extra) -> int:
    return main(["dataset", str(ck), "--n", "10", "--length", "18", "-o", str(out), "--shard-size", "4",
                 "--program", TOK2TOK, "-D", "T=2", "-D", "V=4", *extra])


def test_dataset_draws_with_the_programs_generator(tok2tok_ck, tmp_path, capsys):
    prog, ck = tok2tok_ck
    assert _dataset(ck, tmp_path / "ds") == 0
    assert "10 sequences of length 18 from generator tok2tok(T=2, V=4, p_match=0.9)" in capsys.readouterr().out
    sheet = json.loads((tmp_path / "ds" / "datasheet.json").read_text())
    assert sheet["generator"] == {"name": "tok2tok", "args": {"T": 2, "V": 4, "p_match": 0.9}, "from": "program"}
    assert sheet["program"]["generator"] == {"name": "tok2tok", "args": {"T": "2", "V": "4", "p_match": "9/10"}}
    assert "`tok2tok`" in sheet["sampling"] and "tok2tok" in sheet["tensors"]["inputs"]["meaning"]
    t = _shards(tmp_path / "ds")
    for row, ref in zip(t["inputs"][..., 0].astype(int).tolist(), t["reference/output"][..., 0], strict=True):
        np.testing.assert_allclose(ref, tok2tok_oracle(row, 2)[0], rtol=0, atol=1e-6)
    np.testing.assert_allclose(t["output"], t["reference/output"], rtol=0, atol=1e-6)
    # without --program, the generator the checkpoint records; the same seed gives the same bytes
    sheet2 = build_dataset(ck, tmp_path / "again", n=10, length=18, shard_size=4, progress=False)
    assert sheet2["generator"] == sheet["generator"]
    for s in sheet["shards"]:
        a = load_file(str(tmp_path / "ds" / s["file"]))["inputs"]
        np.testing.assert_array_equal(a, load_file(str(tmp_path / "again" / s["file"]))["inputs"])
    other = build_dataset(ck, tmp_path / "seed1", n=10, length=18, seed=1, shard_size=4, progress=False)
    assert not np.array_equal(_shards(tmp_path / "seed1")["inputs"], t["inputs"]) and other["seed"] == 1
    # --generator-arg overrides one of the declared arguments: no query matches, every answer is 0
    assert _dataset(ck, tmp_path / "nomatch", "--generator-arg", "p_match=0") == 0
    assert json.loads((tmp_path / "nomatch" / "datasheet.json").read_text())["generator"]["args"]["p_match"] == 0
    assert not _shards(tmp_path / "nomatch")["reference/output"].any()


def test_dataset_with_generator_domain_draws_as_before(tok2tok_ck, tmp_path):
    prog, ck = tok2tok_ck
    assert _dataset(ck, tmp_path / "ds", "--generator", "domain") == 0
    sheet = json.loads((tmp_path / "ds" / "datasheet.json").read_text())
    assert sheet["generator"] == {"name": "domain", "args": {}, "from": "option"}
    x = _shards(tmp_path / "ds")["inputs"]
    want = np.concatenate([prog.input.sample(np.random.default_rng([0, i]), min(4, 10 - 4 * i), 18) for i in range(3)])
    np.testing.assert_array_equal(x, want)


GENS = '''import numpy as np


def constant(rng, n, length, value=1):
    return np.full((n, length, 1), float(value))


def wide(rng, n, length):
    return np.zeros((n, length, 2))
'''


def test_dataset_with_a_module_function_generator(tok2tok_ck, tmp_path, monkeypatch, capsys):
    _, ck = tok2tok_ck
    (tmp_path / "my_test_gens.py").write_text(GENS)
    monkeypatch.syspath_prepend(str(tmp_path))
    assert _dataset(ck, tmp_path / "ds", "--generator", "my_test_gens:constant", "--generator-arg", "value=3") == 0
    sheet = json.loads((tmp_path / "ds" / "datasheet.json").read_text())
    assert sheet["generator"] == {"name": "my_test_gens:constant", "args": {"value": 3}, "from": "option"}
    assert (_shards(tmp_path / "ds")["inputs"] == 3).all()
    capsys.readouterr()
    bad = [(["--generator", "my_test_gens:constant", "--generator-arg", "value=7"], "error[E1005]"),  # not in 0..3
           (["--generator", "my_test_gens:wide"], "error[E1005]: generator `my_test_gens:wide` returned an array"),
           (["--generator", "my_test_gens:nothing"], "error[E0411]: generator `my_test_gens:nothing`: module"),
           (["--generator", "no_such_module_here:f"], "error[E0411]: generator `no_such_module_here:f`: cannot"),
           (["--generator", "tok2tk"], "error[E0411]: unknown generator `tok2tk`"),
           (["--generator", "my_test_gens:constant", "--generator-arg", "valu=3"], "error[E0412]: generator `my_test"),
           (["--generator-arg", "T"], "error[E0412]: --generator-arg T: expected NAME=VALUE"),
           # a bad value given here is reported as given here, not at the declaration it overrides
           (["--generator-arg", "p_match=2"], "\nerror[E0412]: generator `tok2tok`: `p_match` must be a number in"),
           (["--generator-arg", "T=fast"], "error[E0412]: --generator-arg T=fast: the value is not a constant")]
    for i, (extra, expected) in enumerate(bad):
        assert _dataset(ck, tmp_path / f"bad{i}", *extra) == 1
        err = "\n" + capsys.readouterr().err
        assert expected in err and "Traceback" not in err


def test_a_generator_function_from_python(tok2tok_ck, tmp_path):
    prog, ck = tok2tok_ck

    def ones(rng, n, length, k=1):
        return np.full((n, length, 1), float(k))

    sheet = build_dataset(ck, tmp_path / "ds", n=3, length=6, program=prog, progress=False, generator=ones,
                          generator_args={"k": 2})
    assert sheet["generator"]["name"].endswith(":test_a_generator_function_from_python.<locals>.ones")
    assert (_shards(tmp_path / "ds")["inputs"] == 2).all()


def test_checking_a_program_that_names_a_generator_does_not_import_torch():
    """The frontend checks the declaration against the registry without importing torch (the
    lsrl.interpretability package does): `lsrl check` stays fast."""
    import subprocess
    import sys

    code = ("import sys; from lsrl.cli import main; rc = main(sys.argv[1:]); "
            "sys.exit(rc if 'torch' not in sys.modules else 99)")
    done = subprocess.run([sys.executable, "-c", code, "check", TOK2TOK, str(ROOT / "programs/dyck1.lsrl")],
                          capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
