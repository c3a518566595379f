"""Lexical scopes of the elaborator: what each name is bound to and where."""

from __future__ import annotations

import difflib
from dataclasses import dataclass

from lsrl.diagnostics import Span
from lsrl.frontend.values import Value


@dataclass
class Binding:
    kind: str  # "let" | "param" | "input" | "state" | "func" | "builtin" | "loop" | "arg"
    value: Value
    span: Span | None
    state: object | None = None  # the builder's StateInfo for kind == "state"
    used: bool = False  # read by name somewhere (a reassignment shares its declaration's flag via `origin`)
    origin: Binding | None = None  # for a reassigned `let`: the declaration


class Scope:
    def __init__(self, parent: Scope | None = None):
        self.parent = parent
        self.vars: dict[str, Binding] = {}

    def lookup(self, name: str) -> Binding | None:
        s: Scope | None = self
        while s is not None:
            if name in s.vars:
                return s.vars[name]
            s = s.parent
        return None

    def owner(self, name: str) -> Scope | None:
        s: Scope | None = self
        while s is not None:
            if name in s.vars:
                return s
            s = s.parent
        return None

    def names(self) -> set[str]:
        out: set[str] = set()
        s: Scope | None = self
        while s is not None:
            out |= set(s.vars)
            s = s.parent
        return out

    def suggest(self, name: str) -> str | None:
        close = difflib.get_close_matches(name, sorted(self.names()), n=1, cutoff=0.7)
        return close[0] if close else None
