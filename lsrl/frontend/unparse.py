"""Print a syntax tree back as canonical .lsrl source (parse(unparse(m)) gives the same tree)."""

from __future__ import annotations

from decimal import Decimal
from fractions import Fraction

from lsrl.frontend import ast

_PREC = {"ternary": 1, "cmp": 2, "+": 3, "-": 3, "*": 4, "/": 4, "%": 4, "@": 4, "neg": 5, "**": 6, "post": 7}
_CMP = {"==", "!=", "<", "<=", ">", ">="}


def _number(v: Fraction) -> str:
    if v.denominator == 1:
        return str(v.numerator)
    text = format(Decimal(v.numerator) / Decimal(v.denominator), "f")
    if Fraction(text) != v:
        raise ValueError(f"{v} has no finite decimal form")
    return text


def _prec(e: ast.Expr) -> int:
    if isinstance(e, ast.Ternary):
        return _PREC["ternary"]
    if isinstance(e, ast.BinOp):
        return _PREC["cmp"] if e.op in _CMP else _PREC[e.op]
    if isinstance(e, ast.Neg):
        return _PREC["neg"]
    return 8


def _wrap(e: ast.Expr, min_prec: int) -> str:
    text = expr(e)
    return f"({text})" if _prec(e) < min_prec else text


def expr(e: ast.Expr) -> str:
    if isinstance(e, ast.Number):
        return _number(e.value)
    if isinstance(e, ast.Name):
        return e.id
    if isinstance(e, ast.BinOp):
        p = _prec(e)
        if e.op == "**":  # right-associative, operand on the left is a postfix expression
            return f"{_wrap(e.left, _PREC['post'])} ** {_wrap(e.right, _PREC['neg'])}"
        if e.op in _CMP:
            return f"{_wrap(e.left, p + 1)} {e.op} {_wrap(e.right, p + 1)}"
        return f"{_wrap(e.left, p)} {e.op} {_wrap(e.right, p + 1)}"
    if isinstance(e, ast.Neg):
        return f"-{_wrap(e.operand, _PREC['neg'])}"
    if isinstance(e, ast.Ternary):
        return f"{_wrap(e.then, 2)} if {_wrap(e.cond, 2)} else {_wrap(e.other, 1)}"
    if isinstance(e, ast.Index):
        return f"{_wrap(e.target, _PREC['post'])}[{expr(e.index)}]"
    if isinstance(e, ast.SliceIndex):
        a = expr(e.start) if e.start else ""
        b = expr(e.stop) if e.stop else ""
        return f"{_wrap(e.target, _PREC['post'])}[{a}:{b}]"
    if isinstance(e, ast.Call):
        args = [expr(a) for a in e.args] + [f"{k}={expr(v)}" for k, v in e.kwargs]
        return f"{e.func}({', '.join(args)})"
    if isinstance(e, ast.ListLit):
        return "[" + ", ".join(expr(i) for i in e.items) + "]"
    if isinstance(e, ast.Comprehension):
        return f"[{expr(e.item)} for {e.var} in {expr(e.iterable)}]"
    raise TypeError(f"cannot unparse {e!r}")


def _domain(d: ast.Domain) -> str:
    if d.kind == "range":
        return "{" + f"{expr(d.items[0])}..{expr(d.items[1])}" + "}"
    if d.kind == "interval":
        return f"[{expr(d.items[0])}, {expr(d.items[1])}]"
    return "{" + ", ".join(expr(i) for i in d.items) + "}"


def _block(body: tuple[ast.Stmt, ...], indent: str) -> list[str]:
    return ["{", *[line for s in body for line in stmt(s, indent + "  ")], indent + "}"]


def _join_block(head: str, body, indent: str) -> list[str]:
    lines = _block(body, indent)
    return [indent + head + " " + lines[0], *lines[1:]]


def stmt(s: ast.Stmt, indent: str = "") -> list[str]:
    i = indent
    if isinstance(s, ast.InputDecl):
        dom = f" in {_domain(s.domain)}" if s.domain else ""
        return [f"{i}input {s.name}[{expr(s.dim)}]{dom}"]
    if isinstance(s, ast.ParamDecl):
        return [f"{i}param {s.name} = {expr(s.value)}"]
    if isinstance(s, ast.Let):
        return [f"{i}let {s.name} = {expr(s.value)}"]
    if isinstance(s, ast.Assign):
        return [f"{i}{s.name} = {expr(s.value)}"]
    if isinstance(s, ast.StateDecl):
        dim = f"[{expr(s.dim)}]" if s.dim else ""
        return [f"{i}state {s.name}{dim} = {expr(s.init)}"]
    if isinstance(s, ast.Update):
        return [f"{i}{s.name} <- {expr(s.value)}"]
    if isinstance(s, ast.Output):
        return [f"{i}output {expr(s.value)}"]
    if isinstance(s, ast.Probe):
        return [f"{i}probe {s.name} = {expr(s.value)}"]
    if isinstance(s, ast.Return):
        return [f"{i}return {expr(s.value)}"]
    if isinstance(s, ast.GeneratorDecl):
        args = ", ".join(expr(a.value) if a.name is None else f"{a.name} = {expr(a.value)}" for a in s.args)
        return [f"{i}generator {s.name}({args})"]
    if isinstance(s, ast.Def):
        params = ", ".join(p.name + (f"={expr(p.default)}" if p.default else "") for p in s.params)
        return _join_block(f"def {s.name}({params})", s.body, i)
    if isinstance(s, ast.For):
        return _join_block(f"for {s.var} in {expr(s.iterable)}", s.body, i)
    if isinstance(s, ast.If):
        lines = _join_block(f"if {expr(s.cond)}", s.then, i)
        if s.other:
            rest = _block(s.other, i)
            lines[-1] += " else " + rest[0]
            lines += rest[1:]
        return lines
    raise TypeError(f"cannot unparse {s!r}")


def unparse(module: ast.Module) -> str:
    return "\n".join(line for s in module.body for line in stmt(s)) + "\n"
