"""Layer templates: which stage kinds one layer of a target hosts, in order.

A position in the schedule is `len(phases) * layer + phase`; the input is at position -1. A materialized
value goes to the earliest position after its operands whose phase hosts its kind (LinState -> "state",
ReLU -> "mlp", Multi -> "gate"). Today every target uses state -> ReLU-MLP -> gate; a target whose layer
hosts another sequence (e.g. a gate before the state) declares its own.
"""

from __future__ import annotations

from dataclasses import dataclass

from lsrl.ir import graph as ir

INPUT_POS = -1
KIND_OF_OP = {ir.LinState: "state", ir.ReLU: "mlp", ir.Multi: "gate"}


@dataclass(frozen=True)
class Template:
    phases: tuple[str, ...]

    def __post_init__(self):
        unknown = set(self.phases) - set(KIND_OF_OP.values())
        if unknown or not set(KIND_OF_OP.values()) <= set(self.phases):
            raise ValueError(f"a template hosts each of {sorted(KIND_OF_OP.values())} (got {self.phases})")

    def kind_at(self, pos: int) -> str:
        return self.phases[pos % len(self.phases)]

    def layer_of(self, pos: int) -> int:
        return pos // len(self.phases)

    def earliest(self, op: ir.Op, after: int) -> int:
        """The first position > `after` whose phase hosts `op`'s kind."""
        kind = KIND_OF_OP.get(type(op))
        if kind is None:
            raise TypeError(f"{op!r} is not materialized")
        q = after + 1
        while self.kind_at(q) != kind:
            q += 1
        return q


STATE_MLP_GATE = Template(("state", "mlp", "gate"))
