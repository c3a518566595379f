"""The causal graph of a compiled program and its correspondence with the model's units.

`causal_graph(compiled)` returns a JSON-able dict:

    nodes:  every value of the compiled (optimised) graph: id, label, op, dim, span, materialized
    edges:  {src, dst, lag}: dst reads src at the same step (lag 0), or a state reads its own previous
            value (lag 1): the program's dataflow over time
    correspondence: per materialized node, where the model holds it, at three granularities:
            layers (names), units ({layer: [unit indices]}) and single units ([{layer, unit, component,
            coefficient}])

`to_dot(...)` draws it (the IR, one box per value, states with their lag-1 loop), or the compiled layer
stack (one box per layer listing the values its units hold), as Graphviz DOT; `render` turns DOT into SVG
or PNG with Graphviz's `dot` when it is installed.
"""

from __future__ import annotations

import shutil
import subprocess

import numpy as np

from lsrl.ir import graph as ir


def causal_graph(compiled) -> dict:
    from lsrl.lowering.forms import MATERIAL
    from lsrl.runtime.checkpoint import build_manifest
    from lsrl.runtime.manifest import entries, placement_decode

    g = compiled.graph
    manifest = build_manifest(compiled)
    nodes = [{"id": n.id, "label": n.label, "op": n.op.mnemonic, "dim": n.dim, "materialized":
              isinstance(n.op, MATERIAL), "span": None if n.span is None else
              {"line": n.span.line, "col": n.span.col, "end_line": n.span.end_line, "end_col": n.span.end_col}}
             for n in g.nodes]
    edges = [{"src": a, "dst": n.id, "lag": 0} for n in g.nodes for a in n.args]
    edges += [{"src": n.id, "dst": n.id, "lag": 1} for n in g.nodes if isinstance(n.op, ir.LinState)]
    corr = {}
    for e in entries(manifest):
        if not e["placements"] or e["node"] in corr:
            continue
        units, singles = {}, []
        for p in e["placements"]:
            decode, _ = placement_decode(p)
            for comp, j in zip(*np.nonzero(decode), strict=True):
                units.setdefault(p["layer"], set()).add(p["start"] + int(j))
                singles.append({"layer": p["layer"], "unit": p["start"] + int(j), "component": int(comp),
                                "coefficient": float(decode[comp, j])})
        corr[e["node"]] = {"layers": list(units), "units": {k: sorted(v) for k, v in units.items()},
                           "single_units": singles}
    return {"program": manifest["program"], "backend": manifest["backend"], "nodes": nodes, "edges": edges,
            "correspondence": corr, "layers": manifest["layers"]}


def _name(node: dict) -> str:
    return node["label"] or f"%{node['id']}"


def to_dot(cg: dict, what: str = "ir") -> str:
    """Graphviz DOT of the causal graph (`what="ir"`) or of the compiled layer stack (`what="layers"`)."""
    lines = [f'digraph "{cg["program"]}" {{', "  rankdir=LR;", '  node [shape=box, fontname="Helvetica"];']
    if what == "ir":
        for n in cg["nodes"]:
            style = ', style=filled, fillcolor="#dde8f8"' if n["op"] == "linstate" else (
                "" if n["materialized"] else ", style=dashed")
            lines.append(f'  n{n["id"]} [label="{_name(n)}\\n{n["op"]}[{n["dim"]}]"{style}];')
        for e in cg["edges"]:
            lag = ' [label="t-1", style=dotted]' if e["lag"] else ""
            lines.append(f'  n{e["src"]} -> n{e["dst"]}{lag};')
    elif what == "layers":
        names = {n["id"]: _name(n) for n in cg["nodes"]}
        held: dict[str, list[str]] = {}
        for node, c in cg["correspondence"].items():
            for layer, units in c["units"].items():
                held.setdefault(layer, []).append(f"{names[int(node)]}: {len(units)} unit(s)")
        prev = None
        for la in cg["layers"]:
            body = "\\l".join(held.get(la["name"], [])) + "\\l"
            lines.append(f'  "{la["name"]}" [label="{la["name"]} ({la["kind"]}, width {la["width"]})\\n{body}"];')
            if prev:
                lines.append(f'  "{prev}" -> "{la["name"]}";')
            prev = la["name"]
    else:
        raise ValueError(f"unknown drawing {what!r}: ir or layers")
    return "\n".join(lines + ["}"]) + "\n"


def render(dot: str, fmt: str) -> bytes:
    """DOT text rendered by Graphviz (`dot -T fmt`); an E1004 error when Graphviz is not installed."""
    from lsrl.diagnostics import error

    exe = shutil.which("dot")
    if exe is None:
        raise error("E1004", f"rendering {fmt} needs Graphviz's `dot`, which is not installed", None,
                    "install graphviz (e.g. `apt-get install graphviz`), or write DOT with --format dot")
    return subprocess.run([exe, f"-T{fmt}"], input=dot.encode(), capture_output=True, check=True).stdout
