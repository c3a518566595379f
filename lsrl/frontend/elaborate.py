"""Elaborate a syntax tree into an IR graph: evaluate constants, inline functions, unroll loops, build states."""

from __future__ import annotations

import hashlib
import importlib.util
import sys
from dataclasses import dataclass
from fractions import Fraction
from functools import cache
from importlib import resources

from lsrl.diagnostics import SOURCES, Diagnostic, LsrlError, Note, Span, error
from lsrl.frontend import ast, limits, ops
from lsrl.frontend.builder import Builder
from lsrl.frontend.builtins import BUILTINS, builtin_values
from lsrl.frontend.parser import parse
from lsrl.frontend.scope import Binding, Scope
from lsrl.frontend.values import Builtin, Const, Function, Step, Value, as_int
from lsrl.ir import graph as ir
from lsrl.ir.coeffs import Coeffs, obj_array
from lsrl.program import Domain, GeneratorSpec, InputSpec, Program

PRELUDE_FILE = "<prelude>"
MAX_CALL_DEPTH = 64


@cache
def _prelude_module() -> ast.Module:
    text = resources.files("lsrl.frontend").joinpath("prelude.lsrl").read_text()
    return parse(text, PRELUDE_FILE)


@dataclass
class _Frame:
    """One active function call."""

    name: str
    call_span: Span
    prelude: bool


class Elaborator:
    def __init__(self, file: str, overrides: dict[str, Const] | None = None):
        self.file = file
        self.b = Builder()
        self.overrides = dict(overrides or {})
        self.params: dict[str, object] = {}
        self.frames: list[_Frame] = []
        self.input: InputSpec | None = None
        self.input_node: int | None = None
        self.output: int | None = None
        self.output_span: Span | None = None
        self.probes: list[tuple[str, int]] = []
        self.probe_spans: dict[str, Span] = {}
        self.generator: GeneratorSpec | None = None
        self.declared: list[tuple[str, Binding]] = []  # the program's lets and states, for unused warnings
        self.budget = limits.MAX_ELEMENTS  # compile-time work left (lsrl.frontend.limits)
        root = Scope()
        for name, value in builtin_values().items():
            root.vars[name] = Binding("builtin", value, None)
        self.prelude_scope = Scope(root)
        for stmt in _prelude_module().body:
            assert isinstance(stmt, ast.Def), "the prelude holds only function definitions"
            self.prelude_scope.vars[stmt.name] = Binding("func", Function(stmt, self.prelude_scope, True),
                                                         stmt.span)
        self.globals = Scope(self.prelude_scope)

    # ------------------------------------------------------------ diagnostics and node creation

    @property
    def _prelude_frame(self) -> _Frame | None:
        """The outermost active prelude call: errors and nodes inside it are shown at its call site."""
        return next((f for f in self.frames if f.prelude), None)

    def fail(self, code: str, message: str, span: Span | None, hint: str | None = None) -> LsrlError:
        frame = self._prelude_frame
        if frame is None or span is None or span.file != PRELUDE_FILE:
            return error(code, message, span, hint)
        note = Note(f"raised inside prelude function `{frame.name}`", span)
        return error(code, message, frame.call_span, hint, (note,))

    def node(self, op: ir.Op, args: list[int], span: Span) -> Step:
        frame = self._prelude_frame
        where = frame.call_span if frame else span
        dim = op.out_dim(tuple(self.b.dim(a) for a in args))
        if dim > limits.MAX_DIM:
            raise self.fail("E0228", f"this value would have dimension {dim:,} (the limit is {limits.MAX_DIM:,})",
                            where, "set LSRL_MAX_DIM to allow more, or keep values smaller")
        if not all(c.finite for c in ir.coeffs_of(op)):
            raise self.fail("E0229", "this value needs a coefficient beyond float64's range (magnitude 1.8e308 "
                            "or more)", where, "no float model or interpreter can hold it: rescale the constants")
        nid = self.b.add(op, args, where)
        return Step(nid, self.b.dim(nid))

    def spend(self, n: int, span: Span, what: str) -> None:
        """Count n elements of compile-time work (E0227 past lsrl.frontend.limits.MAX_ELEMENTS)."""
        self.budget -= n
        if self.budget < 0:
            raise self.fail("E0227", f"{what} takes the program's compile-time work past "
                            f"{limits.MAX_ELEMENTS:,} elements", span,
                            "set LSRL_MAX_ELEMENTS to allow more, or use smaller params")

    def _label(self, value: Value, name: str) -> None:
        if isinstance(value, Step) and self._prelude_frame is None:
            self.b.set_label(value.node, ".".join([f.name for f in self.frames] + [name]))

    # ------------------------------------------------------------ program

    def program(self, module: ast.Module) -> ir.Graph:
        self.read_anywhere = ast.names_read(module)
        self.exec_block(module.body, self.globals)
        eof = Span(module.file, 1, 1, 1, 2)
        if self.input is None:
            raise error("E0401", "the program has no `input` declaration", eof,
                        "declare the token stream, e.g. `input x[1] in {0, 1}`")
        if self.output is None:
            raise error("E0402", "the program has no `output` statement", eof, "add e.g. `output x`")
        if self.overrides:
            name = sorted(self.overrides)[0]
            near = self.globals.suggest(name)
            raise error("E0405", f"-D {name}: the program has no `param {name}`", None,
                        f"did you mean `{near}`?" if near in self.params else
                        f"declared params: {', '.join(self.params) or 'none'}")
        if self.generator is not None:
            _generators().check(self.generator, self.input)
        name = self.file.rsplit("/", 1)[-1].removesuffix(".lsrl")
        return self.b.freeze(self.input_node, self.output, self.probes, name)

    def warnings(self) -> tuple[Diagnostic, ...]:
        """W0001 per `let` or state declared in the program (not the prelude) and never read by name: once per
        declaration, though a function body or loop may run it many times; `_`-prefixed names are exempt, and
        so is a name some expression reads in code that did not run (a branch `if` left out at these params)."""
        seen: dict[Span, Diagnostic] = {}
        by_span: dict[Span, bool] = {}
        for _, b in self.declared:
            by_span[b.span] = by_span.get(b.span, False) or b.used
        for name, b in self.declared:
            if not by_span[b.span] and b.span not in seen and not self._read_unrun(name):
                what = "state" if b.kind == "state" else "`let` binding"
                fix = ("read it, or remove the state and its update" if b.kind == "state"
                       else "use it, remove it, or prefix its name with `_`")
                seen[b.span] = Diagnostic("W0001", f"the {what} `{name}` is never read", b.span, fix, (),
                                          "warning")
        return tuple(sorted(seen.values(), key=lambda d: (d.span.line, d.span.col)))

    def _read_unrun(self, name: str) -> bool:
        """Whether the source reads `name` in an expression that never ran (elaboration marks what ran)."""
        return name in self.read_anywhere and not any(b.used for n, b in self.declared if n == name)

    # ------------------------------------------------------------ statements

    def exec_block(self, stmts: tuple[ast.Stmt, ...], scope: Scope) -> Value | None:
        """Run statements; returns the value of a `return`, if one ran."""
        for stmt in stmts:
            result = self.exec(stmt, scope)
            if result is not None:
                return result
        return None

    def exec(self, stmt: ast.Stmt, scope: Scope) -> Value | None:
        method = getattr(self, f"_exec_{type(stmt).__name__}")
        return method(stmt, scope)

    def _top_level_only(self, stmt: ast.Stmt, scope: Scope, what: str) -> None:
        if scope is not self.globals:
            raise self.fail("E0407", f"`{what}` is allowed only at the top level of a program", stmt.span,
                            f"move the `{what}` out of the function, loop or if-block")

    def _declare(self, scope: Scope, name: str, binding: Binding, span: Span) -> None:
        if binding.kind in ("let", "state") and self._prelude_frame is None and not name.startswith("_"):
            self.declared.append((name, binding))  # checked for use once the program is elaborated
        old = scope.vars.get(name)
        if old is not None and old.kind not in ("func", "builtin"):
            where = f" at {old.span.line}:{old.span.col}" if old.span else ""
            hint = (f"use `{name} = ...` to give an existing `let` a new value" if old.kind == "let"
                    else "choose another name")
            raise self.fail("E0102", f"`{name}` is already defined in this scope{where}", span, hint)
        scope.vars[name] = binding

    def _exec_InputDecl(self, s: ast.InputDecl, scope: Scope):
        self._top_level_only(s, scope, "input")
        if self.input is not None:
            raise self.fail("E0406", "a program has exactly one `input`", s.span,
                            f"widen `{self.input.name}` and slice it, e.g. `input {self.input.name}[2]`")
        dim = self._int_expr(s.dim, scope, "an input dim", minimum=1)
        domain = self._domain(s.domain, scope) if s.domain else None
        step = self.node(ir.Input(dim), [], s.span)
        self.b.set_label(step.node, s.name)
        self.input, self.input_node = InputSpec(s.name, dim, domain, s.span), step.node
        self._declare(scope, s.name, Binding("input", step, s.span), s.span)

    def _domain(self, d: ast.Domain, scope: Scope) -> Domain:
        vals = [self._const_scalar(e, scope, "a domain bound") for e in d.items]
        if d.kind == "range":
            lo, hi = (as_int(v) for v in vals)
            if lo is None or hi is None or hi < lo:
                raise self.fail("E0408", "an integer domain `{lo..hi}` needs integers with lo <= hi", d.span)
            if hi - lo > 1_000_000:
                raise self.fail("E0408", "integer domain is too large to enumerate", d.span,
                                "use a real interval `[lo, hi]`")
            return Domain("set", tuple(Fraction(v) for v in range(lo, hi + 1)))
        if d.kind == "interval":
            if not vals[0] < vals[1]:
                raise self.fail("E0408", "an interval `[lo, hi]` needs lo < hi", d.span)
            return Domain("interval", tuple(vals))
        return Domain("set", tuple(sorted(set(vals))))

    def _exec_ParamDecl(self, s: ast.ParamDecl, scope: Scope):
        self._top_level_only(s, scope, "param")
        if s.name in self.params:
            raise self.fail("E0102", f"param `{s.name}` is declared twice", s.span)
        value = self.overrides.pop(s.name, None) if s.name in self.overrides else self.eval(s.value, scope)
        if not isinstance(value, Const):
            raise self.fail("E0409", f"param `{s.name}` must be a compile-time constant, got a "
                            f"{value.describe()}", s.value.span, "params are fixed before any token is read")
        self.params[s.name] = value.arr.item() if value.ndim == 0 else value.arr
        self._declare(scope, s.name, Binding("param", value, s.span), s.span)

    def _exec_Let(self, s: ast.Let, scope: Scope):
        value = self.eval(s.value, scope)
        self._label(value, s.name)
        self._declare(scope, s.name, Binding("let", value, s.span), s.span)

    def _exec_Assign(self, s: ast.Assign, scope: Scope):
        owner = scope.owner(s.name)
        if owner is None:
            raise self.fail("E0101", f"cannot assign to `{s.name}`: it is not defined", s.span,
                            f"declare it first: `let {s.name} = ...`")
        old = owner.vars[s.name]
        if old.kind not in ("let", "arg"):
            hint = f"a state is updated with `{s.name} <- ...`" if old.kind == "state" else None
            raise self.fail("E0103", f"cannot assign to {old.kind} `{s.name}`; only `let` values can be "
                            "reassigned", s.span, hint)
        value = self.eval(s.value, scope)
        self._label(value, s.name)
        owner.vars[s.name] = Binding(old.kind, value, s.span, origin=old.origin or old)

    def _exec_StateDecl(self, s: ast.StateDecl, scope: Scope):
        init = self.eval(s.init, scope)
        if not isinstance(init, Const) or init.ndim == 2:
            raise self.fail("E0310", "a state's initial value must be a constant scalar or vector",
                            s.init.span, "the initial value is fixed before any token is read")
        if s.dim is not None:
            dim = self._int_expr(s.dim, scope, "a state dim", minimum=1)
            if init.ndim == 0:
                init = Const(obj_array([init.scalar()] * dim))
            elif init.arr.shape[0] != dim:
                raise self.fail("E0311", f"state `{s.name}` has dim {dim} but its initial value has length "
                                f"{init.arr.shape[0]}", s.init.span)
        vec = init.arr.reshape(-1)
        if vec.size == 0:
            raise self.fail("E0311", f"state `{s.name}` would have dim 0", s.span)
        info = self.b.declare_state(s.name, Coeffs(vec), self._span(s.span))
        if self._prelude_frame is None and self.frames:
            self.b.nodes[info.node].label = ".".join([f.name for f in self.frames] + [s.name])
        elif self._prelude_frame is not None:
            self.b.nodes[info.node].label = None
        step = Step(info.node, vec.size)
        self._declare(scope, s.name, Binding("state", step, s.span, info), s.span)

    def _span(self, span: Span) -> Span:
        frame = self._prelude_frame
        return frame.call_span if frame else span

    def _exec_Update(self, s: ast.Update, scope: Scope):
        binding = scope.lookup(s.name)
        if binding is None or binding.kind != "state":
            what = "not defined" if binding is None else f"a {binding.kind}, not a state"
            raise self.fail("E0303", f"`{s.name} <- ...` updates a state, but `{s.name}` is {what}", s.span,
                            f"declare it first: `state {s.name} = 0`" if binding is None else
                            "use `let`/`=` for per-step values")
        info = binding.state
        if info.update_span is not None:
            raise error("E0304", f"state `{s.name}` is updated twice", s.span,
                        "a state has exactly one update; combine them into one expression",
                        (Note("the first update is here", info.update_span),))
        inner = Scope(scope)
        prev = Step(self.b.prev(info, self._span(s.span)), binding.value.dim)
        inner.vars[s.name] = Binding("state-prev", prev, s.span)
        value = ops.data_of(self, self.eval(s.value, inner), s.value.span, "a state update")
        step = ops.materialize(self, value, s.value.span)
        if step.dim != prev.dim:
            if step.dim != 1:
                raise self.fail("E0302", f"the update of state `{s.name}` has dim {step.dim}, but the state has "
                                f"dim {prev.dim}", s.value.span)
            step = ops.broadcast_step(self, step, prev.dim, s.value.span)
        self.b.set_update(info, step.node, prev.node, s.name, self._span(s.span))

    def _exec_Output(self, s: ast.Output, scope: Scope):
        self._top_level_only(s, scope, "output")
        if self.output is not None:
            raise self.fail("E0403", "a program has exactly one `output`", s.span,
                            "concatenate the values, e.g. `output [a, b]`, or add a `probe`")
        step = ops.materialize(self, ops.data_of(self, self.eval(s.value, scope), s.value.span, "an output"),
                               s.value.span)
        self.b.set_label(step.node, "output")
        self.output, self.output_span = step.node, s.span

    def _exec_Probe(self, s: ast.Probe, scope: Scope):
        self._top_level_only(s, scope, "probe")
        if s.name in self.probe_spans:
            raise self.fail("E0102", f"probe `{s.name}` is defined twice", s.span)
        step = ops.materialize(self, ops.data_of(self, self.eval(s.value, scope), s.value.span, "a probe"),
                               s.value.span)
        self.b.set_label(step.node, s.name)
        self.probes.append((s.name, step.node))
        self.probe_spans[s.name] = s.span

    def _exec_GeneratorDecl(self, s: ast.GeneratorDecl, scope: Scope):
        """`generator NAME(ARG = VALUE, ...)`: the arguments are evaluated now, to constants; the name and the
        arguments are checked against the generator once the whole program is elaborated (`program`)."""
        self._top_level_only(s, scope, "generator")
        if self.generator is not None:
            raise error("E0413", "a program names at most one `generator`", s.span,
                        "keep one; `lsrl dataset --generator NAME` draws from another",
                        (Note("the first `generator` is here", self.generator.span),))
        args: dict[str, object] = {}
        spans: dict[str, Span] = {}
        for a in s.args:
            if a.name is None:
                raise self.fail("E0412", "generator arguments are passed by name", a.span,
                                "write `NAME = VALUE`, e.g. `generator tok2tok(T = T, V = V)`")
            if a.name in args:
                raise self.fail("E0412", f"generator argument `{a.name}` is given twice", a.span)
            value = self.eval(a.value, scope)
            if not isinstance(value, Const):
                raise self.fail("E0412", f"generator argument `{a.name}` must be a compile-time constant, got a "
                                f"{value.describe()}", a.value.span,
                                "generator arguments are numbers fixed at compile time: params, constants")
            args[a.name] = value.arr.item() if value.ndim == 0 else _nested(value.arr.tolist())
            spans[a.name] = a.span
        self.generator = GeneratorSpec(s.name, args, s.span, s.name_span, spans)

    def _exec_Def(self, s: ast.Def, scope: Scope):
        names = [p.name for p in s.params]
        dup = next((p for i, p in enumerate(s.params) if p.name in names[:i]), None)
        if dup is not None:
            raise self.fail("E0102", f"parameter `{dup.name}` appears twice in `{s.name}`", dup.span)
        self._declare(scope, s.name, Binding("func", Function(s, scope, scope is self.prelude_scope), s.span),
                      s.span)

    def _exec_For(self, s: ast.For, scope: Scope):
        it = self.eval(s.iterable, scope)
        if not isinstance(it, Const) or it.ndim == 0:
            raise self.fail("E0220", f"cannot loop over a {it.describe()}", s.iterable.span,
                            "loops run at compile time over constants, e.g. `for i in range(T)`")
        for item in it.arr:
            self.spend(1, s.iterable.span, "this loop")
            inner = Scope(scope)
            inner.vars[s.var] = Binding("loop", Const(obj_array(item)), s.span)
            result = self.exec_block(s.body, inner)
            if result is not None:
                return result
        return None

    def _exec_If(self, s: ast.If, scope: Scope):
        return self.exec_block(s.then if self._truth(s.cond, scope, "`if`") else s.other, Scope(scope))

    def _exec_Return(self, s: ast.Return, scope: Scope):
        if not self.frames:
            raise self.fail("E0404", "`return` outside a function", s.span, "use `output` at the top level")
        return self.eval(s.value, scope)

    # ------------------------------------------------------------ expressions

    def eval(self, e: ast.Expr, scope: Scope) -> Value:
        return getattr(self, f"_eval_{type(e).__name__}")(e, scope)

    def _eval_Number(self, e: ast.Number, scope):
        return Const.number(e.value)

    def _eval_Name(self, e: ast.Name, scope: Scope):
        b = scope.lookup(e.id)
        if b is None:
            near = scope.suggest(e.id)
            raise self.fail("E0101", f"unknown name `{e.id}`", e.span, f"did you mean `{near}`?" if near else
                            "names must be defined (let, state, param, input, def) before they are used")
        (b.origin or b).used = True
        return b.value

    _BIN = {"+": lambda c, a, b, s: ops.add(c, a, b, s), "-": lambda c, a, b, s: ops.add(c, a, b, s, -1),
            "*": ops.mul, "/": ops.div, "%": ops.mod, "@": ops.matmul, "**": ops.power}

    def _eval_BinOp(self, e: ast.BinOp, scope: Scope):
        a, b = self.eval(e.left, scope), self.eval(e.right, scope)
        try:
            out = self._BIN[e.op](self, a, b, e.span) if e.op in self._BIN else ops.compare(self, e.op, a, b, e.span)
        except OverflowError:  # float arithmetic with an exact operand too large for a float, say
            out = None
        if out is None or (isinstance(out, Const) and not out.finite):
            raise self.fail("E0229", "this compile-time arithmetic leaves float64's range (magnitude 1.8e308 or "
                            "more, or not a number)", e.span,
                            "exact (rational) arithmetic has no such limit: keep floats (results of `sin`, `cos`, "
                            "`exp`, ...) out of very large values")
        return out

    def _eval_Neg(self, e: ast.Neg, scope: Scope):
        return ops.neg(self, self.eval(e.operand, scope), e.span)

    def _eval_Ternary(self, e: ast.Ternary, scope: Scope):
        return self.eval(e.then if self._truth(e.cond, scope, "`... if ... else ...`") else e.other, scope)

    def _eval_Index(self, e: ast.Index, scope: Scope):
        return ops.index(self, self.eval(e.target, scope), self.eval(e.index, scope), e.span)

    def _eval_SliceIndex(self, e: ast.SliceIndex, scope: Scope):
        start = self.eval(e.start, scope) if e.start else None
        stop = self.eval(e.stop, scope) if e.stop else None
        return ops.slice_(self, self.eval(e.target, scope), start, stop, e.span)

    def _eval_ListLit(self, e: ast.ListLit, scope: Scope):
        return ops.make_list(self, [self.eval(i, scope) for i in e.items], e.span)

    def _eval_Comprehension(self, e: ast.Comprehension, scope: Scope):
        it = self.eval(e.iterable, scope)
        if not isinstance(it, Const) or it.ndim == 0:
            raise self.fail("E0220", f"cannot loop over a {it.describe()}", e.iterable.span,
                            "comprehensions run at compile time over constants, e.g. `range(T)`")
        if len(it.arr) > limits.MAX_DIM:  # its list would be a value (or matrix) that long: refuse before the work
            raise self.fail("E0228", f"this comprehension would make a list of {len(it.arr):,} items (the limit "
                            f"is {limits.MAX_DIM:,})", e.span, "set LSRL_MAX_DIM to allow more, or use smaller params")
        items = []
        for item in it.arr:
            self.spend(1, e.span, "this comprehension")
            inner = Scope(scope)
            inner.vars[e.var] = Binding("loop", Const(obj_array(item)), e.span)
            items.append(self.eval(e.item, inner))
        return ops.make_list(self, items, e.span)

    def _eval_Call(self, e: ast.Call, scope: Scope):
        b = scope.lookup(e.func)
        if b is None:
            near = scope.suggest(e.func)
            raise self.fail("E0101", f"unknown function `{e.func}`", e.func_span,
                            f"did you mean `{near}`?" if near else "see docs/language.md for the prelude")
        fn = b.value
        args = [self.eval(a, scope) for a in e.args]
        kwargs = {}
        for k, v in e.kwargs:
            if k in kwargs:
                raise self.fail("E0221", f"keyword argument `{k}` given twice", v.span)
            kwargs[k] = (self.eval(v, scope), v.span)
        if isinstance(fn, Builtin):
            return self._call_builtin(fn, args, kwargs, e)
        if isinstance(fn, Function):
            return self.call_function(fn, args, kwargs, e)
        raise self.fail("E0201", f"`{e.func}` is a {fn.describe()}, not a function", e.func_span)

    def _call_builtin(self, fn: Builtin, args: list[Value], kwargs: dict, e: ast.Call) -> Value:
        nmin, nmax, impl = BUILTINS[fn.name]
        if kwargs:
            raise self.fail("E0221", f"builtin `{fn.name}` takes no keyword arguments", e.span)
        if len(args) < nmin or (nmax is not None and len(args) > nmax):
            want = f"{nmin}" if nmin == nmax else f"{nmin} to {nmax}" if nmax else f"at least {nmin}"
            raise self.fail("E0223", f"`{fn.name}` takes {want} argument(s), got {len(args)}", e.span)
        return impl(self, args, e.span)

    def call_function(self, fn: Function, args: list[Value], kwargs: dict, e: ast.Call) -> Value:
        d = fn.defn
        names = [p.name for p in d.params]
        if len(args) > len(names):
            raise self.fail("E0223", f"`{d.name}` takes at most {len(names)} argument(s), got {len(args)}",
                            e.span, f"signature: {self._signature(d)}")
        bound: dict[str, Value] = dict(zip(names, args, strict=False))
        for k, (v, span) in kwargs.items():
            if k not in names:
                raise self.fail("E0221", f"`{d.name}` has no parameter `{k}`", span,
                                f"signature: {self._signature(d)}")
            if k in bound:
                raise self.fail("E0221", f"`{d.name}` got two values for `{k}`", span)
            bound[k] = v
        if len(self.frames) >= MAX_CALL_DEPTH:
            raise self.fail("E0224", f"calls nested deeper than {MAX_CALL_DEPTH} (runaway recursion in "
                            f"`{d.name}`?)", e.span, "recursion must stop at compile time")
        self.frames.append(_Frame(d.name, self._span(e.span), fn.prelude))
        try:
            inner = Scope(fn.scope)
            for p in d.params:
                if p.name in bound:
                    value = bound[p.name]
                elif p.default is not None:
                    value = self.eval(p.default, inner)
                else:
                    self.frames.pop()
                    raise self.fail("E0222", f"`{d.name}` is missing argument `{p.name}`", e.span,
                                    f"signature: {self._signature(d)}")
                inner.vars[p.name] = Binding("arg", value, p.span)
            result = self.exec_block(d.body, inner)
        finally:
            if self.frames and self.frames[-1].name == d.name:
                self.frames.pop()
        if result is None:
            raise self.fail("E0225", f"function `{d.name}` ended without `return`", d.span,
                            "end the body with `return expr`")
        return result

    @staticmethod
    def _signature(d: ast.Def) -> str:
        return f"{d.name}(" + ", ".join(p.name + ("=..." if p.default else "") for p in d.params) + ")"

    # ------------------------------------------------------------ helpers

    def _const_scalar(self, e: ast.Expr, scope: Scope, what: str):
        v = self.eval(e, scope)
        if not isinstance(v, Const) or v.ndim != 0:
            raise self.fail("E0216", f"{what} must be a constant scalar, got a {v.describe()}", e.span)
        return v.scalar()

    def _int_expr(self, e: ast.Expr, scope: Scope, what: str, minimum: int) -> int:
        n = as_int(self._const_scalar(e, scope, what))
        if n is None or n < minimum:
            raise self.fail("E0217", f"{what} must be an integer >= {minimum}", e.span)
        return n

    def _truth(self, e: ast.Expr, scope: Scope, what: str) -> bool:
        v = self.eval(e, scope)
        if not isinstance(v, Const) or v.ndim != 0:
            raise self.fail("E0206", f"the condition of {what} must be a compile-time constant scalar",
                            e.span, "for a per-step choice use ifelse(c, a, b) or ifelse_mul(c, a, b)")
        return v.scalar() != 0


def _nested(v):
    """A constant vector or matrix (nested lists) as nested tuples."""
    return tuple(_nested(x) for x in v) if isinstance(v, list) else v


def _generators():
    """lsrl.interpretability.generators (numpy only), which `generator` declarations are checked against."""
    return importlib.import_module("lsrl.interpretability.generators")


# ---------------------------------------------------------------- public entry points


def parse_param_value(name: str, text: str) -> Const:
    """A -D override: any constant LSRL expression, e.g. `3`, `1/3`, `[1, 2]`; anything else is E0410."""
    hint = "write -D NAME=VALUE with VALUE like 3, 1/3 or [1, 2]"
    file = f"<-D {name}>"
    try:
        module = parse(f"let __v = {text}", file)
        stmt = module.body[0] if len(module.body) == 1 else None
    except LsrlError:
        stmt = None
    if not isinstance(stmt, ast.Let):
        raise error("E0410", f"-D {name}={text}: the value is not a constant expression", None, hint)
    elab = Elaborator(file)
    try:
        value = elab.eval(stmt.value, elab.globals)
    except LsrlError as exc:
        # e.g. a bare name (`-D mode=fast`: LSRL has no strings) or a division by zero
        raise error("E0410", f"-D {name}={text}: the value is not a constant expression "
                    f"({exc.diagnostics[0].message})", None, hint) from None
    if not isinstance(value, Const):
        raise error("E0410", f"-D {name}={text}: the value is not a constant expression", None, hint)
    return value


def compile_source(text: str, file: str = "<input>", params: dict[str, object] | None = None) -> Program:
    """Parse and elaborate a program; `params` overrides `param` declarations (numbers or strings)."""
    overrides = {k: v if isinstance(v, Const) else parse_param_value(k, str(v)) if isinstance(v, str)
                 else Const(obj_array(v)) for k, v in (params or {}).items()}
    for k, v in overrides.items():
        if not v.finite:
            raise error("E0410", f"-D {k}: the value is not a finite number", None,
                        "params are exact rationals or finite floats")
    elab = Elaborator(file, overrides)
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(max(limit, 20000))
    try:
        graph = elab.program(parse(text, file))
    except RecursionError:
        raise error("E0005", "the program nests too deeply to compile", _deepest(text, file),
                    "split the expression with `let` bindings") from None
    finally:
        sys.setrecursionlimit(limit)
    digest = hashlib.sha256(text.encode()).hexdigest()
    return Program(graph, elab.input, elab.params, file, digest, elab.warnings(), elab.generator)


def _deepest(text: str, file: str) -> Span:
    """Where brackets nest deepest (the likeliest place a nesting exhausted the recursion limit)."""
    depth, best, at, line, col = 0, -1, (1, 1), 1, 1
    for ch in text:
        depth += 1 if ch in "([{" else -1 if ch in ")]}" else 0
        if depth > best:
            best, at = depth, (line, col)
        line, col = (line + 1, 1) if ch == "\n" else (line, col + 1)
    return Span(file, at[0], at[1], at[0], at[1] + 1)


def load_program(path: str, params: dict[str, object] | None = None) -> Program:
    """Read, parse and elaborate a .lsrl file."""
    try:
        with open(path, encoding="utf-8") as fh:
            text = fh.read()
    except OSError as exc:
        raise error("E0000", f"cannot read {path}: {exc.strerror or exc}", None) from None
    except UnicodeDecodeError:
        raise error("E0000", f"cannot read {path}: not UTF-8 text", None) from None
    SOURCES.add(path, text)
    return compile_source(text, path, params)


