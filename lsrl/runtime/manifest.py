"""The checkpoint manifest: where every program value lives in a compiled model (see checkpoint.py's
module docstring for the layout), and how its node ids match the interpreter's trace."""

from __future__ import annotations

import os
from fractions import Fraction

import numpy as np

from lsrl.ir.rational import RatArray
from lsrl.runtime.canon import _exact, _num, _span

MANIFEST_FORMAT = "lsrl-manifest"
FORMAT_VERSION = 2


def _layer_index(name: str) -> tuple[int, str]:
    if name == "input":
        return (-1, name)
    head, _, idx = name.rpartition(".")
    return (int(idx), head) if idx.isdigit() else (1 << 30, name)


def _layers(compiled) -> list[dict]:
    """The manifest's layers: the input, then per stack stage the module holding its values (`{prefix}.{i}`
    unless the backend names others)."""
    from lsrl.backends import get_backend

    backend = get_backend(compiled.options.backend)
    stages = compiled.stack.stages
    if backend.name == "lrnn":  # the module is the lowered stack itself: layer i outputs stage i's values
        widths = [st.out.width for st in stages]
    else:  # one torch layer per stage, whose hidden size the module config records
        widths = [int(h) for h in compiled.emitted.config["hiddens"]]
    names = compiled.emitted.stage_layers(backend.prefix, len(stages))
    out = [{"name": "input", "kind": "input", "width": compiled.graph.input_dim}]
    for name, st, width in zip(names, stages, widths, strict=True):
        out.append({"name": name, "kind": st.kind, "width": width})
    return out


def _placement(p) -> dict:
    return {
        "layer": p.layer,
        "start": p.start,
        "stop": p.stop,
        "decode": _exact(p.decode),
        "offset": _exact(p.offset),
        "weight": _floats(p.decode.to_float()),
    }


def _floats(w: np.ndarray) -> list:
    """A float64 matrix as nested lists of JSON numbers (`_num` per entry only where one is not finite)."""
    if np.isfinite(w).all():
        return (w + 0.0).tolist()  # + 0.0: no negative zeros, as _num
    return [[_num(v) for v in row] for row in w]


def _readout(form, dim: int, places: dict[int, dict[str, object]], order: list[str]):
    """The value's linear read-out from the earliest layer holding all its operands, or None: its linear form
    composed with the operands' placements there (weight = sum M_m @ decode_m, bias = b + sum M_m @ offset_m)."""
    bias = RatArray.of(form.bias).to_fractions()
    if not form.terms:
        return {"layer": None, "start": 0, "stop": 0, "weight": [[] for _ in range(dim)],
                "bias": [_num(v) for v in bias]}
    for layer in order:
        spots = [places.get(m, {}).get(layer) for m in form.deps]
        if any(s is None for s in spots):
            continue
        start, stop = min(s.start for s in spots), max(s.stop for s in spots)
        w = np.full((dim, stop - start), Fraction(0), dtype=object)
        b = bias.copy()
        for (_, mat), p in zip(form.terms, spots, strict=True):
            m = RatArray.of(mat)
            w[:, p.start - start : p.stop - start] += (m @ p.decode).to_fractions()
            b += (m @ p.offset).to_fractions()
        return {
            "layer": layer,
            "start": start,
            "stop": stop,
            "weight": [[_num(v) for v in row] for row in w],
            "bias": [_num(v) for v in b],
        }
    return None


def build_manifest(compiled) -> dict:
    """The manifest dict (see the module docstring) of a compiled program."""
    from lsrl.backends import Placement
    from lsrl.lowering.forms import MATERIAL, forms

    graph = compiled.graph
    fs = forms(graph)
    layers = _layers(compiled)
    order = [la["name"] for la in layers]
    d_in = graph.input_dim
    given = [Placement(graph.input, "input", 0, d_in, RatArray.eye(d_in), RatArray.zeros(d_in))]
    given += compiled.emitted.placements
    extra = [la for la in {p.layer for p in given} if la not in order]
    order += sorted(extra, key=_layer_index)
    rank = {name: i for i, name in enumerate(order)}
    places: dict[int, dict[str, Placement]] = {}  # node -> layer -> its first placement there
    listed: dict[int, list[Placement]] = {}
    for p in given:
        places.setdefault(p.node, {}).setdefault(p.layer, p)
        listed.setdefault(p.node, []).append(p)

    def entry(node_id: int) -> dict:
        n = graph[node_id]
        material = isinstance(n.op, MATERIAL)
        form = fs[node_id]
        mine = sorted(listed.get(n.id, []), key=lambda p: (rank[p.layer], p.start))
        return {
            "node": n.id,
            "label": n.label,
            "op": n.op.mnemonic,
            "dim": n.dim,
            "span": _span(n.span),
            "materialized": material,
            "placements": [_placement(p) for p in mine],
            "depends_on": [] if material else [{"node": m, "label": graph[m].label} for m in form.deps],
            "readout": _readout(form, n.dim, places, order),
        }

    variables: dict[str, list[dict]] = {}
    for n in graph.nodes:
        if n.label:
            variables.setdefault(n.label, []).append(entry(n.id))
    unnamed = [entry(n.id) for n in graph.nodes if not n.label and isinstance(n.op, MATERIAL)]
    heads = {name: f"probe_heads.{i}" for i, (name, _) in enumerate(graph.probes)}
    rebase = getattr(compiled, "rebase", None)  # lsrl obfuscate --basis: values share every unit of a layer
    basis = {} if rebase is None else {"basis": {"kind": rebase.kind, "layers": [la["name"] for la in layers[1:]],
                                                 "shared": len(set(rebase.layers)) < len(rebase.layers)}}
    return {
        **basis,
        "format": MANIFEST_FORMAT,
        "format_version": FORMAT_VERSION,
        "backend": compiled.options.backend,
        "program": os.path.basename(compiled.program.file),
        "layers": layers,
        "variables": variables,
        "unnamed": unnamed,
        "probes": {
            name: {"head": heads[name], "dim": graph[i].dim, "value": entry(i)} for name, i in graph.probes
        },
        "output": {"head": "readout", "dim": graph.output_dim, "value": entry(graph.output)},
    }


def entries(manifest: dict) -> list[dict]:
    """Every entry of a manifest: the variables', the unnamed values', the probes' values and the output's
    value, in that order."""
    out = [e for es in manifest.get("variables", {}).values() for e in es]
    out += manifest.get("unnamed", [])
    out += [p["value"] for p in manifest.get("probes", {}).values()]
    if "output" in manifest:
        out.append(manifest["output"]["value"])
    return out


def placement_decode(p: dict) -> tuple[np.ndarray, np.ndarray]:
    """A manifest placement's (decode, offset) as float64 arrays, from its exact entries."""
    decode = np.array([[float(Fraction(v)) for v in row] for row in p["decode"]]).reshape(len(p["decode"]), -1)
    return decode, np.array([float(Fraction(v)) for v in p["offset"]])


def match_trace(manifest: dict, program_graph) -> dict[int, int]:
    """{manifest node id: `program_graph` node id} for the manifest's nodes that can be found in the program's
    own (unoptimised) graph, whose ids `lsrl.interpret(program_graph, x, trace=True).values` reports.

    Manifest node ids are ids of the optimised graph (`compiled.graph`), which the optimiser renumbers, so
    nodes are matched by what survives optimisation: the ``label`` and the source ``span`` (file basename,
    line, col, end_line, end_col), with equal ``dim`` as a check. Only unique matches count: a (label, span,
    dim) key that more than one node has on either side (e.g. a function local, bound at the same span on
    every call) is left out, and so are unlabelled nodes and nodes without a span. For a traced run,
    ``trace.values[match[e["node"]]]`` is then the program's value of manifest entry ``e``."""

    def key(label, span, dim):
        return (label, tuple(sorted(span.items())), dim) if label and span else None

    theirs: dict[tuple, list[int]] = {}
    for n in program_graph.nodes:
        k = key(n.label, _span(n.span), n.dim)
        if k is not None:
            theirs.setdefault(k, []).append(n.id)
    ours: dict[tuple, set[int]] = {}
    for e in entries(manifest):
        k = key(e.get("label"), e.get("span"), e.get("dim"))
        if k is not None:
            ours.setdefault(k, set()).add(e["node"])
    return {
        next(iter(nodes)): theirs[k][0]
        for k, nodes in ours.items()
        if len(nodes) == 1 and len(theirs.get(k, ())) == 1
    }
