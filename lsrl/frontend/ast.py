"""Syntax tree of .lsrl programs: frozen dataclasses, each carrying its source span."""

from __future__ import annotations

from dataclasses import dataclass
from fractions import Fraction

from lsrl.diagnostics import Span

# ---------------------------------------------------------------- expressions


@dataclass(frozen=True)
class Expr:
    span: Span


@dataclass(frozen=True)
class Number(Expr):
    value: Fraction


@dataclass(frozen=True)
class Name(Expr):
    id: str


@dataclass(frozen=True)
class BinOp(Expr):
    op: str  # one of + - * / @ ** == != < <= > >=
    left: Expr
    right: Expr


@dataclass(frozen=True)
class Neg(Expr):
    operand: Expr


@dataclass(frozen=True)
class Ternary(Expr):
    then: Expr
    cond: Expr
    other: Expr


@dataclass(frozen=True)
class Index(Expr):
    target: Expr
    index: Expr


@dataclass(frozen=True)
class SliceIndex(Expr):
    target: Expr
    start: Expr | None
    stop: Expr | None


@dataclass(frozen=True)
class Call(Expr):
    func: str
    func_span: Span
    args: tuple[Expr, ...]
    kwargs: tuple[tuple[str, Expr], ...]


@dataclass(frozen=True)
class ListLit(Expr):
    items: tuple[Expr, ...]


@dataclass(frozen=True)
class Comprehension(Expr):
    item: Expr
    var: str
    iterable: Expr


# ---------------------------------------------------------------- statements


@dataclass(frozen=True)
class Stmt:
    span: Span


@dataclass(frozen=True)
class Domain:
    kind: str  # "interval" | "set" | "range"
    items: tuple[Expr, ...]
    span: Span


@dataclass(frozen=True)
class InputDecl(Stmt):
    name: str
    dim: Expr
    domain: Domain | None


@dataclass(frozen=True)
class ParamDecl(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class Let(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class Assign(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class StateDecl(Stmt):
    name: str
    dim: Expr | None
    init: Expr


@dataclass(frozen=True)
class Update(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class Output(Stmt):
    value: Expr


@dataclass(frozen=True)
class Probe(Stmt):
    name: str
    value: Expr


@dataclass(frozen=True)
class GeneratorArg:
    name: str | None  # None: a positional argument (refused when elaborated: generator arguments are named)
    value: Expr
    span: Span


@dataclass(frozen=True)
class GeneratorDecl(Stmt):
    name: str  # a registered generator ("tok2tok") or "module.sub:function"
    name_span: Span
    args: tuple[GeneratorArg, ...]


@dataclass(frozen=True)
class Return(Stmt):
    value: Expr


@dataclass(frozen=True)
class DefParam:
    name: str
    default: Expr | None
    span: Span


@dataclass(frozen=True)
class Def(Stmt):
    name: str
    params: tuple[DefParam, ...]
    body: tuple[Stmt, ...]  # a one-line `def f(x) = e` has body (Return(e),)


@dataclass(frozen=True)
class For(Stmt):
    var: str
    iterable: Expr
    body: tuple[Stmt, ...]


@dataclass(frozen=True)
class If(Stmt):
    cond: Expr
    then: tuple[Stmt, ...]
    other: tuple[Stmt, ...]


@dataclass(frozen=True)
class Module:
    file: str
    body: tuple[Stmt, ...]


def names_read(node) -> set[str]:
    """Every name an expression anywhere under `node` reads (function bodies and untaken branches included),
    except a state's reads of itself in its own update (they only feed the state)."""
    out: set[str] = set()
    stack = [node]
    while stack:
        n = stack.pop()
        if isinstance(n, Name):
            out.add(n.id)
        elif isinstance(n, Update):
            out |= names_read(n.value) - {n.name}
        elif isinstance(n, tuple | list):
            stack.extend(n)
        elif hasattr(n, "__dataclass_fields__"):
            stack.extend(getattr(n, f) for f in n.__dataclass_fields__)
    return out
