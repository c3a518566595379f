"""Parse .lsrl text into the syntax tree (lsrl.frontend.ast); Lark errors become diagnostics."""

from __future__ import annotations

from fractions import Fraction
from functools import cache
from importlib import resources

from lark import Lark, Token, Transformer, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError
from lark.lexer import PatternStr

from lsrl.diagnostics import SOURCES, LsrlError, Note, Span, error
from lsrl.frontend import ast

# Friendly names for the grammar's pattern (regex) terminals in "expected ..." messages.  Literal terminals
# (keywords, punctuation, and anonymous ones such as `<-` or `**` that Lark calls __ANON_n) are shown as their
# quoted text, read off the grammar in _terminal_names().
_PATTERN_NAMES = {"NAME": "a name", "NUMBER": "a number", "_NL": "a newline", "CMP_OP": "a comparison"}


class _DropNewlinesInBrackets:
    """Post-lexer: newlines inside (...) and [...] do not end statements."""

    always_accept = ("_NL",)

    def __init__(self):
        self.open: list[Token] = []  # brackets still open; read after a syntax error

    def process(self, stream):
        self.open = []
        for tok in stream:
            if tok.type in ("LPAR", "LSQB"):
                self.open.append(tok)
            elif tok.type in ("RPAR", "RSQB"):
                if self.open:
                    self.open.pop()
            elif tok.type == "_NL" and self.open:
                continue
            yield tok


@cache
def _lark() -> Lark:
    text = resources.files("lsrl.grammar").joinpath("lsrl.lark").read_text()
    return Lark(text, parser="lalr", lexer="contextual", postlex=_DropNewlinesInBrackets(),
                propagate_positions=True, maybe_placeholders=True)


def _span(file: str, meta) -> Span:
    return Span(file, meta.line, meta.column, meta.end_line, meta.end_column)


def _tok_span(file: str, tok: Token) -> Span:
    return Span(file, tok.line, tok.column, tok.end_line or tok.line, tok.end_column or tok.column + 1)


@v_args(meta=True)
class _ToAst(Transformer):
    def __init__(self, file: str):
        super().__init__()
        self.file = file

    def _s(self, meta) -> Span:
        return _span(self.file, meta)

    # expressions
    def number(self, meta, c):
        return ast.Number(self._s(meta), Fraction(str(c[0])))

    def name(self, meta, c):
        return ast.Name(self._s(meta), str(c[0]))

    def _bin(self, meta, c, op: str) -> ast.BinOp:
        return ast.BinOp(self._s(meta), op, c[0], c[1])

    def add(self, meta, c):
        return self._bin(meta, c, "+")

    def sub(self, meta, c):
        return self._bin(meta, c, "-")

    def mul(self, meta, c):
        return self._bin(meta, c, "*")

    def div(self, meta, c):
        return self._bin(meta, c, "/")

    def matmul(self, meta, c):
        return self._bin(meta, c, "@")

    def mod(self, meta, c):
        return self._bin(meta, c, "%")

    def pow(self, meta, c):
        return self._bin(meta, c, "**")

    def compare(self, meta, c):
        return ast.BinOp(self._s(meta), str(c[1]), c[0], c[2])

    def neg(self, meta, c):
        return ast.Neg(self._s(meta), c[0])

    def pos(self, meta, c):
        return c[0]

    def ternary(self, meta, c):
        return ast.Ternary(self._s(meta), c[0], c[1], c[2])

    def index(self, meta, c):
        target, idx = c
        if isinstance(idx, tuple):
            return ast.SliceIndex(self._s(meta), target, idx[0], idx[1])
        return ast.Index(self._s(meta), target, idx)

    def index_one(self, meta, c):
        return c[0]

    def index_slice(self, meta, c):
        return (c[0], c[1])

    def call(self, meta, c):
        func, args = c
        if not isinstance(func, ast.Name):
            raise error("E0002", "only named functions can be called", func.span,
                        "call a function by its name, e.g. `relu(x)`")
        pos, kw = [], []
        for a in args or []:
            if isinstance(a, tuple):
                kw.append(a)
            elif kw:
                raise error("E0003", "positional argument after a keyword argument", a.span,
                            "put positional arguments first")
            else:
                pos.append(a)
        return ast.Call(self._s(meta), func.id, func.span, tuple(pos), tuple(kw))

    def args(self, meta, c):
        return list(c)

    def kwarg(self, meta, c):
        return (str(c[0]), c[1])

    def list(self, meta, c):
        return ast.ListLit(self._s(meta), tuple(x for x in c if x is not None))

    def comprehension(self, meta, c):
        return ast.Comprehension(self._s(meta), c[0], str(c[1]), c[2])

    # statements
    def start(self, meta, c):
        return list(c)

    def block(self, meta, c):
        return tuple(c)

    def int_range_domain(self, meta, c):
        return ast.Domain("range", tuple(c), self._s(meta))

    def set_domain(self, meta, c):
        return ast.Domain("set", tuple(c), self._s(meta))

    def interval_domain(self, meta, c):
        return ast.Domain("interval", tuple(c), self._s(meta))

    def input_decl(self, meta, c):
        return ast.InputDecl(self._s(meta), str(c[0]), c[1], c[2])

    def param_decl(self, meta, c):
        return ast.ParamDecl(self._s(meta), str(c[0]), c[1])

    def let_stmt(self, meta, c):
        return ast.Let(self._s(meta), str(c[0]), c[1])

    def assign_stmt(self, meta, c):
        return ast.Assign(self._s(meta), str(c[0]), c[1])

    def state_decl(self, meta, c):
        return ast.StateDecl(self._s(meta), str(c[0]), c[1], c[2])

    def update_stmt(self, meta, c):
        return ast.Update(self._s(meta), str(c[0]), c[1])

    def output_stmt(self, meta, c):
        return ast.Output(self._s(meta), c[0])

    def probe_stmt(self, meta, c):
        return ast.Probe(self._s(meta), str(c[0]), c[1])

    def generator_decl(self, meta, c):
        name, args = c
        return ast.GeneratorDecl(self._s(meta), name[0], name[1], tuple(args or ()))

    def generator_name(self, meta, c):
        *path, function = c
        text = ".".join(str(t) for t in path) + (f":{function}" if function is not None else "")
        return (text, self._s(meta))

    def generator_args(self, meta, c):
        return list(c)

    def generator_kwarg(self, meta, c):
        return ast.GeneratorArg(str(c[0]), c[1], self._s(meta))

    def generator_posarg(self, meta, c):
        return ast.GeneratorArg(None, c[0], self._s(meta))

    def return_stmt(self, meta, c):
        return ast.Return(self._s(meta), c[0])

    def def_param(self, meta, c):
        return ast.DefParam(str(c[0]), c[1], self._s(meta))

    def def_params(self, meta, c):
        return tuple(c)

    def def_stmt(self, meta, c):
        name, params, body = c
        if isinstance(body, ast.Expr):
            body = (ast.Return(body.span, body),)
        return ast.Def(self._s(meta), str(name), params or (), body)

    def for_stmt(self, meta, c):
        return ast.For(self._s(meta), str(c[0]), c[1], c[2])

    def if_stmt(self, meta, c):
        cond, then, other = c
        if isinstance(other, ast.If):
            other = (other,)
        return ast.If(self._s(meta), cond, then, other or ())


@cache
def _terminal_names() -> dict[str, str]:
    """Terminal name -> how "expected ..." shows it: quoted text for literal terminals, a phrase for patterns."""
    names = {"$END": "end of file"}
    for term in _lark().terminals:
        if isinstance(term.pattern, PatternStr):
            names[term.name] = f"'{term.pattern.value}'"
        else:
            names[term.name] = _PATTERN_NAMES.get(term.name, term.name.lower())
    return names


def _expected(names) -> str:
    names = [n for n in names if n != "_NL"] or list(names)
    friendly = _terminal_names()
    shown = sorted({friendly.get(n, n) for n in names})
    if len(shown) > 8:
        shown = shown[:8] + ["..."]
    return ", ".join(shown)


def _unclosed_brace(file: str, text: str) -> Span | None:
    """The last '{' without its '}' (blocks: braces are not tracked by the bracket-aware lexer), comments
    skipped."""
    stack = []
    for n, line in enumerate(text.splitlines(), 1):
        for c, ch in enumerate(line.split("#", 1)[0], 1):
            if ch == "{":
                stack.append(Span(file, n, c, n, c + 1))
            elif ch == "}" and stack:
                stack.pop()
    return stack[-1] if stack else None


def _syntax_error(file: str, exc: UnexpectedInput):
    if isinstance(exc, UnexpectedCharacters):
        span = Span(file, exc.line, exc.column, exc.line, exc.column + 1)
        ch = exc.char
        hint = "statements are separated by newlines or ';'" if ch in "{}" else None
        if ch == "'" or ch == '"':
            hint = "LSRL has no strings"
        return error("E0001", f"unexpected character {ch!r}", span, hint)
    if isinstance(exc, UnexpectedEOF):
        text = SOURCES.texts.get(file, "")
        lines = text.splitlines() or [""]
        span = Span(file, len(lines), len(lines[-1]) + 1, len(lines), len(lines[-1]) + 2)
        still_open = _lark().options.postlex.open
        if still_open:
            tok = still_open[-1]
            return error("E0004", f"unclosed '{tok}'", _tok_span(file, tok),
                         f"add the matching '{')' if str(tok) == '(' else ']'}'")
        brace = _unclosed_brace(file, text)
        if brace is not None:
            return error("E0001", "unexpected end of file", span, "add the matching '}'",
                         (Note("'{' opened here is still open", brace),))
        return error("E0001", "unexpected end of file", span, f"expected {_expected(exc.expected)}")
    assert isinstance(exc, UnexpectedToken)
    tok = exc.token
    if tok.type == "$END":
        return _syntax_error(file, UnexpectedEOF(exc.expected))
    what = "newline" if tok.type == "_NL" else repr(str(tok))
    span = _tok_span(file, tok)
    if tok.type == "_NL":
        span = Span(file, tok.line, tok.column, tok.line, tok.column + 1)
    hint = f"expected {_expected(exc.expected)}"
    still_open = [b for b in _lark().options.postlex.open if b.line < tok.line]
    notes = tuple(Note(f"'{b}' opened here is still open", _tok_span(file, b)) for b in still_open[-1:])
    return error("E0001", f"unexpected {what}", span, hint, notes)


def parse(text: str, file: str = "<input>") -> ast.Module:
    """Parse a whole program; raises LsrlError with a located diagnostic on bad syntax."""
    SOURCES.add(file, text)
    if not text.endswith("\n"):
        text += "\n"
    try:
        tree = _lark().parse(text)
    except UnexpectedInput as exc:
        raise _syntax_error(file, exc) from None
    try:
        body = _ToAst(file).transform(tree)
    except VisitError as exc:
        if isinstance(exc.orig_exc, LsrlError):
            raise exc.orig_exc from None
        raise
    return ast.Module(file, tuple(body))
