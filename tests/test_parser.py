"""Parser: round trips through the unparser (files and hypothesis-built trees), literals, layout rules."""

from __future__ import annotations

import dataclasses
from fractions import Fraction
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from lsrl import compile_source
from lsrl.diagnostics import LsrlError, Span
from lsrl.frontend import ast
from lsrl.frontend.parser import parse
from lsrl.frontend.unparse import unparse

ROOT = Path(__file__).parent.parent
SPAN = Span("t", 1, 1, 1, 1)


def strip(node):
    """The tree without source spans, as nested tuples."""
    if isinstance(node, (list, tuple)):
        return tuple(strip(n) for n in node)
    if dataclasses.is_dataclass(node):
        return (type(node).__name__,) + tuple(
            strip(getattr(node, f.name)) for f in dataclasses.fields(node) if not f.name.endswith("span"))
    return node


def roundtrip(text: str) -> None:
    m1 = parse(text, "a.lsrl")
    m2 = parse(unparse(m1), "b.lsrl")
    assert strip(m1.body) == strip(m2.body)


FILES = sorted(ROOT.glob("programs/*.lsrl")) + [ROOT / "lsrl/frontend/prelude.lsrl"]


@pytest.mark.parametrize("path", FILES, ids=lambda p: p.name)
def test_roundtrip_files(path):
    roundtrip(path.read_text())


def test_roundtrip_is_a_fixed_point():
    text = (ROOT / "lsrl/frontend/prelude.lsrl").read_text()
    once = unparse(parse(text, "a"))
    assert unparse(parse(once, "b")) == once


# ---------------------------------------------------------------- random trees

names = st.sampled_from(["x", "y", "s", "acc", "k2", "relu_"])
numbers = st.fractions(min_value=0, max_value=1000, max_denominator=1).map(lambda f: f) | st.sampled_from(
    [Fraction(1, 2), Fraction(1, 4), Fraction(3, 8), Fraction(1, 1000), Fraction(125, 10)])


def exprs():
    leaf = st.one_of(numbers.map(lambda v: ast.Number(SPAN, v)), names.map(lambda n: ast.Name(SPAN, n)))

    def extend(sub):
        binop = st.builds(lambda op, a, b: ast.BinOp(SPAN, op, a, b),
                          st.sampled_from(["+", "-", "*", "/", "@", "%", "**", "==", "<", ">="]), sub, sub)
        return st.one_of(
            binop,
            sub.map(lambda a: ast.Neg(SPAN, a)),
            st.builds(lambda a, c, b: ast.Ternary(SPAN, a, c, b), sub, sub, sub),
            st.builds(lambda t, i: ast.Index(SPAN, t, i), sub, sub),
            st.builds(lambda t, a, b: ast.SliceIndex(SPAN, t, a, b), sub, st.none() | sub, st.none() | sub),
            st.builds(lambda f, a, kw: ast.Call(SPAN, f, SPAN, tuple(a), tuple(kw)), names,
                      st.lists(sub, max_size=3), st.lists(st.tuples(names, sub), max_size=2)),
            st.lists(sub, max_size=3).map(lambda items: ast.ListLit(SPAN, tuple(items))),
            st.builds(lambda e, v, it: ast.Comprehension(SPAN, e, v, it), sub, names, sub),
        )

    return st.recursive(leaf, extend, max_leaves=12)


def stmts(depth: int = 2):
    e = exprs()
    simple = st.one_of(
        st.builds(lambda n, v: ast.Let(SPAN, n, v), names, e),
        st.builds(lambda n, v: ast.Assign(SPAN, n, v), names, e),
        st.builds(lambda n, d, v: ast.StateDecl(SPAN, n, d, v), names, st.none() | e, e),
        st.builds(lambda n, v: ast.Update(SPAN, n, v), names, e),
        st.builds(lambda v: ast.Output(SPAN, v), e),
        st.builds(lambda n, v: ast.Probe(SPAN, n, v), names, e),
        st.builds(lambda v: ast.Return(SPAN, v), e),
        st.builds(lambda n, v: ast.ParamDecl(SPAN, n, v), names, e),
    )
    if depth == 0:
        return simple
    inner = st.lists(stmts(depth - 1), max_size=3).map(tuple)
    return st.one_of(
        simple,
        st.builds(lambda v, it, b: ast.For(SPAN, v, it, b), names, e, inner),
        st.builds(lambda c, a, b: ast.If(SPAN, c, a, b), e, inner, inner),
        st.builds(lambda n, ps, b: ast.Def(SPAN, n, tuple(ast.DefParam(p, None, SPAN) for p in dict.fromkeys(ps)),
                                           b), names, st.lists(names, max_size=3), inner),
    )


@settings(max_examples=300, deadline=None)
@given(st.lists(stmts(), min_size=1, max_size=5))
def test_roundtrip_random_trees(body):
    module = ast.Module("t", tuple(body))
    text = unparse(module)
    assert strip(parse(text, "t").body) == strip(module.body)


# ---------------------------------------------------------------- literals and layout


def test_decimal_literals_are_exact():
    prog = compile_source("input x[1]\noutput 0.1 * x + 1/3\n", "t.lsrl")
    lin = [n for n in prog.graph.nodes if n.op.mnemonic == "linear"]
    coeffs = {v for n in lin for c in [*n.op.mats, n.op.bias] for v in c.data.reshape(-1)}
    assert Fraction(1, 10) in coeffs and Fraction(1, 3) in coeffs
    assert prog.graph.exact


def test_newlines_inside_brackets_continue_the_statement():
    prog = compile_source("input x[2]\nlet m = [\n  [1, 2],\n  [3, 4]\n]\noutput relu(\n  m @ x\n)\n", "t.lsrl")
    assert prog.graph.output_dim == 2


def test_semicolons_separate_statements():
    prog = compile_source("input x[1]; state s = 0; s <- s + x; output s", "t.lsrl")
    assert prog.graph.output_dim == 1


def test_comment_and_blank_lines():
    compile_source("# header\n\ninput x[1]  # the token\n\n\noutput x # done", "t.lsrl")


def test_syntax_error_is_located():
    with pytest.raises(LsrlError) as exc:
        parse("input x[1]\noutput x +* 2\n", "t.lsrl")
    d = exc.value.diagnostics[0]
    assert (d.code, d.span.line, d.span.col) == ("E0001", 2, 11)


def test_expected_tokens_show_their_text_not_lark_names():
    from lsrl.frontend.parser import _lark, _terminal_names

    names = _terminal_names()
    assert {t.name for t in _lark().terminals} <= names.keys()
    assert not [shown for shown in names.values() if "ANON" in shown or "__" in shown]
    assert "'**'" in names.values() and "'%'" in names.values()
    with pytest.raises(LsrlError) as exc:
        parse("input x[1]\nstate s = 0\ns s + x\noutput s\n", "t.lsrl")
    assert exc.value.diagnostics[0].hint == "expected '<-', '='"
