"""Interventions: set a program value at chosen steps, in the interpreter and in the compiled model alike.

In the interpreter (`lsrl.interpret(..., interventions=...)`) the value is replaced before anything reads
it; a state then evolves from what it was set to. In the model, a forward hook on the layer that computes
the value (its first placement) moves that placement's units to a preimage of the new value (the
minimum-norm correction `u + D^T (D D^T)^-1 (v - offset - D u)` of the decode `D`: every reader of the
layer reads values through decodes, so any preimage gives the same downstream values), and where the layer
carries state from step to step it runs the rest of the sequence again from the patched step (torch
recurrent layers from that hidden state, an lrnn state stage from that state, a mamba block's scan from
the state slots its patched rows hold, a hawk temporal half's RG-LRU from the states its rows hold). Both
sides then give the
same outputs, up to the backend's promise: the ground truth that activation patching is scored against.
"""

from __future__ import annotations

from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

if TYPE_CHECKING:  # torch loads on first use: importing lsrl.interpretability stays torch-free
    import torch


@dataclass(frozen=True)
class Intervention:
    node: int  # a materialized node of the compiled (optimised) graph, as the manifest names it
    steps: tuple[int, ...]  # 0-based steps, the same for the whole batch
    value: np.ndarray  # (batch, time, dim): the value at each step (only the listed steps are used)


def node_of(manifest: dict, name: str) -> int:
    """The node id of a program variable (the first node bound to the name that has units)."""
    from lsrl.diagnostics import error

    for e in manifest["variables"].get(name, []):
        if e["placements"]:
            return e["node"]
    known = [k for k, es in manifest["variables"].items() if any(e["placements"] for e in es)]
    raise error("E1001", f"no variable `{name}` with units in this model", None,
                f"variables with units: {', '.join(known)}")


def placement_of(manifest: dict, node: int) -> dict:
    """The node's first placement (the layer that computes it)."""
    from lsrl.diagnostics import error
    from lsrl.runtime.manifest import entries

    for e in entries(manifest):
        if e["node"] == node and e["placements"]:
            return e["placements"][0]
    raise error("E1001", f"node %{node} has no units in this model (not a materialized value)", None,
                "intervene on a value the manifest lists with placements (a state, ReLU, product or input)")


@contextmanager
def patched(module: torch.nn.Module, manifest: dict, interventions: list[Intervention]):
    """While active, `module` computes with the interventions applied (hooks on the layers concerned)."""
    from lsrl.diagnostics import error
    from lsrl.runtime.manifest import entries

    basis = manifest.get("basis", {})
    if basis.get("shared") and basis.get("kind") != "orthogonal":
        # a stream carries values written by earlier layers, which the layer's placements do not all list: the
        # patch could not hold them fixed (an orthogonal M keeps them apart by itself: the minimum-norm patch
        # moves only p), and a wrong ground truth is worse than none
        raise error("E1006", "interventions on a model whose residual stream took a non-orthogonal change of basis "
                    "are not supported", None,
                    "intervene on the model before `lsrl obfuscate --basis unimodular`, use --basis orthogonal, or "
                    "an lrnn model (its layers each have their own basis, and interventions there are exact)")
    hooks = []
    for iv in interventions:
        p = placement_of(manifest, iv.node)
        # after a change of basis (lsrl obfuscate --basis) a layer's values share all its units: moving one value's
        # units alone would move the others too, so they are held fixed. (Elsewhere units shared with p hold values
        # computed from it, such as an rnn pair's relu(balance), which must follow it: p's units alone move.)
        others = [] if p["layer"] not in basis.get("layers", ()) else [
            q for e in entries(manifest) for q in e["placements"] if q["layer"] == p["layer"] and q is not p]
        if p["layer"] == "input":
            hooks.append(module.register_forward_pre_hook(_input_patch(iv, p, others)))
        else:
            layer = module.get_submodule(p["layer"])
            hooks.append(layer.register_forward_hook(_layer_patch(iv, p, others, layer)))
    try:
        yield module
    finally:
        for h in hooks:
            h.remove()


def _target_units(units: torch.Tensor, iv: Intervention, p: dict, others: list[dict], t: int):
    """(start, stop, units) at step t moved (minimum norm) so that placement p decodes to the intervention's value
    and every placement in `others` that shares p's units decodes as before."""
    import torch

    from lsrl.runtime.manifest import placement_decode

    share = [q for q in others if q["start"] < p["stop"] and p["start"] < q["stop"]]
    lo, hi = min([p["start"], *(q["start"] for q in share)]), max([p["stop"], *(q["stop"] for q in share)])
    u = units[:, t, lo:hi].double().numpy()
    rows, rhs = [], []
    for q, value in [(p, np.asarray(iv.value, dtype=np.float64)[:, t]), *((q, None) for q in share)]:
        D, off = placement_decode(q)
        M = np.zeros((D.shape[0], hi - lo))
        M[:, q["start"] - lo:q["stop"] - lo] = D
        rows.append(M)
        rhs.append(np.zeros((u.shape[0], D.shape[0])) if value is None else value - off - u @ M.T)
    fix = np.linalg.lstsq(np.vstack(rows), np.hstack(rhs).T, rcond=None)[0].T  # min-norm: p moves, the rest stay
    return lo, hi, torch.from_numpy(u + fix).to(units.dtype)


def _input_patch(iv: Intervention, p: dict, others: list[dict]):
    def hook(module, args, kwargs=None):
        x = args[0].clone()
        for t in iv.steps:
            lo, hi, units = _target_units(x, iv, p, others, t)
            x[:, t, lo:hi] = units
        return (x, *args[1:])

    return hook


def _layer_patch(iv: Intervention, p: dict, others: list[dict], layer: torch.nn.Module):
    def hook(module, args, output):
        h_in = args[0]
        out = (output[0] if isinstance(output, tuple) else output).clone()
        for t in sorted(iv.steps):
            lo, hi, units = _target_units(out, iv, p, others, t)
            out[:, t, lo:hi] = units
            if t + 1 < out.shape[1]:
                rest = _continue(layer, h_in, t, out[:, t])
                if rest is not None:
                    out[:, t + 1:] = rest
        return (out, *output[1:]) if isinstance(output, tuple) else out

    return hook


def _check_ranges(target, ref) -> None:
    from lsrl.diagnostics import error
    from lsrl.lowering.forms import MATERIAL

    for n in target.graph.nodes:
        if not isinstance(n.op, MATERIAL):
            continue
        lo, hi = np.array(target.facts.lo(n.id)), np.array(target.facts.hi(n.id))
        v = ref.values[n.id]
        slack = 1e-9 * np.maximum(1.0, np.maximum(np.abs(lo), np.abs(hi)))
        if np.any(v < lo - slack) or np.any(v > hi + slack):
            name = f"`{n.label}`" if n.label else f"%{n.id}"
            raise error("E1002", f"this intervention drives {name} to {float(v.min()):g}..{float(v.max()):g}, "
                        f"outside the range [{float(lo.min()):g}, {float(hi.max()):g}] the model was compiled for",
                        n.span, "intervene with values the program can reach (e.g. from another input's run): "
                        "the compiled constants and the promise hold on the proven ranges only")


def _continue(layer: torch.nn.Module, h_all: torch.Tensor, t: int, state: torch.Tensor) -> torch.Tensor | None:
    """The layer's output on steps t + 1.. of its input `h_all` from `state`, its output at step t (None: the
    layer carries nothing from step to step)."""
    import torch

    if hasattr(layer, "resume"):  # a mamba block, a hawk temporal half: their scans restart from the patched rows
        return layer.resume(h_all, t, state)
    h_in = h_all[:, t + 1:]
    with torch.no_grad():  # `forward`, not the module call: its hooks (this patch among them) stay out
        h0 = state.unsqueeze(0).contiguous()
        if isinstance(layer, torch.nn.LSTM):  # the gated constructions keep c = h on every unit that recurs
            return layer.forward(h_in, (h0, h0.clone()))[0]
        if isinstance(layer, torch.nn.RNNBase):
            return layer.forward(h_in, h0)[0]
        if getattr(layer, "kind", None) == "state":  # lrnn: s_t = A s_{t-1} + B h_t + bias
            from lsrl.ir.recurrence import linear_recurrence

            drive = torch.nn.functional.linear(h_in, layer.B, layer.bias)
            return linear_recurrence(drive, layer.A.T, state)
    return None


def intervene(target, x, interventions: list[Intervention]):
    """Run the interpreter (on the compiled graph, whose node ids the manifest uses) and the model with the
    same interventions; returns (RunResult, model output, model probes). Refuses (E1002) an intervention
    that drives a value outside the range the model was compiled for: its constants (a ReLU RNN's
    one-unit encoding of a value proven non-negative, a gated unit's scale) hold only there."""
    import torch

    from lsrl.ir.interpreter import interpret
    from lsrl.runtime.checkpoint import build_manifest

    manifest = build_manifest(target)
    ref = interpret(target.graph, x, trace=True,
                    interventions={iv.node: (list(iv.steps), iv.value) for iv in interventions})
    _check_ranges(target, ref)
    module = target.module
    dtype = next(module.parameters()).dtype
    with patched(module, manifest, interventions), torch.no_grad():
        y, probes = module(torch.tensor(np.asarray(x, dtype=np.float64), dtype=dtype), probes=True)
    return ref, y.double().numpy(), {k: v.double().numpy() for k, v in probes.items()}
