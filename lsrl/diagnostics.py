"""Source spans and user-facing diagnostics (FILE:LINE:COL: error[CODE]: message, source line, caret, hint)."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Span:
    """A half-open source region; lines and columns are 1-based."""

    file: str
    line: int
    col: int
    end_line: int
    end_col: int

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}"


@dataclass(frozen=True)
class Note:
    message: str
    span: Span | None = None


@dataclass(frozen=True)
class Diagnostic:
    code: str
    message: str
    span: Span | None = None
    hint: str | None = None
    notes: tuple[Note, ...] = ()
    severity: str = "error"  # or "warning" (the program still compiles)

    def to_json(self) -> dict:
        """The diagnostic as JSON-able data (`--json`): code, severity, message, span (or null), hint, notes."""
        return {"code": self.code, "severity": self.severity, "message": self.message, "span": _span_json(self.span),
                "hint": self.hint, "notes": [{"message": n.message, "span": _span_json(n.span)} for n in self.notes]}


def _span_json(span: Span | None) -> dict | None:
    return None if span is None else {"file": span.file, "line": span.line, "col": span.col,
                                      "end_line": span.end_line, "end_col": span.end_col}


class LsrlError(Exception):
    """A user error: rendered as diagnostics, never as a traceback."""

    def __init__(self, *diagnostics: Diagnostic):
        super().__init__(diagnostics[0].message if diagnostics else "error")
        self.diagnostics = list(diagnostics)

    def render(self, sources: SourceMap | None = None) -> str:
        return "\n".join(render(d, sources) for d in self.diagnostics)

    def __str__(self) -> str:
        return self.render(SOURCES)


def error(code: str, message: str, span: Span | None = None, hint: str | None = None,
          notes: tuple[Note, ...] = ()) -> LsrlError:
    """Build an LsrlError holding one diagnostic (raise the result)."""
    return LsrlError(Diagnostic(code, message, span, hint, notes))


@dataclass
class SourceMap:
    """Source texts by file name, so diagnostics can quote the offending line."""

    texts: dict[str, str] = field(default_factory=dict)

    def add(self, name: str, text: str) -> None:
        self.texts[name] = text

    def span_text(self, span: Span | None) -> str | None:
        """The source text a one-line span covers (None when unknown or spanning lines)."""
        if span is None or span.line != span.end_line:
            return None
        text = self.line(span.file, span.line)
        return None if text is None else text[span.col - 1:span.end_col - 1] or None

    def line(self, name: str, line: int) -> str | None:
        text = self.texts.get(name)
        if text is None:
            return None
        lines = text.splitlines()
        return lines[line - 1] if 0 < line <= len(lines) else None


# Every source the frontend reads is registered here so any error can quote it.
SOURCES = SourceMap()


def _quote(span: Span, sources: SourceMap | None) -> list[str]:
    text = sources.line(span.file, span.line) if sources else None
    if text is None:
        return []
    width = len(str(span.line))
    end = span.end_col if span.end_line == span.line and span.end_col > span.col else span.col + 1
    end = min(end, max(len(text) + 1, span.col + 1))
    carets = "^" * max(1, end - span.col)
    return [f" {' ' * width} |", f" {span.line} | {text}", f" {' ' * width} | {' ' * (span.col - 1)}{carets}"]


def render(d: Diagnostic, sources: SourceMap | None = None) -> str:
    where = f"{d.span}: " if d.span else ""
    out = [f"{where}{d.severity}[{d.code}]: {d.message}"]
    if d.span:
        out += _quote(d.span, sources)
    for note in d.notes:
        at = f" (at {note.span})" if note.span else ""
        out.append(f"  = note: {note.message}{at}")
    if d.hint:
        out.append(f"  = hint: {d.hint}")
    return "\n".join(out)
