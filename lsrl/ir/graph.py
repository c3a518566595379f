"""The IR: a frozen DAG of the paper's primitives with static dims, kept in topological order."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import InitVar, dataclass, field

from lsrl.cached import cached
from lsrl.diagnostics import Span
from lsrl.ir.coeffs import Coeffs


class IRError(Exception):
    """An ill-formed graph: a compiler bug, never a user error."""


# ---------------------------------------------------------------- ops


@dataclass(frozen=True)
class Op:
    """An operation; its operands are the node's `args` (node ids)."""

    mnemonic = "op"

    def out_dim(self, arg_dims: tuple[int, ...]) -> int:
        raise NotImplementedError


@dataclass(frozen=True)
class Input(Op):
    """The token at the current step."""

    dim: int
    mnemonic = "input"

    def out_dim(self, arg_dims):
        _expect(not arg_dims, "input takes no operands")
        return self.dim


@dataclass(frozen=True)
class Linear(Op):
    """y = sum_i mats[i] @ args[i] + bias; with no operands it is a constant."""

    mats: tuple[Coeffs, ...]
    bias: Coeffs
    mnemonic = "linear"

    def out_dim(self, arg_dims):
        _expect(len(self.mats) == len(arg_dims), "one matrix per operand")
        (d,) = self.bias.shape
        for m, a in zip(self.mats, arg_dims, strict=True):
            _expect(m.shape == (d, a), f"matrix {m.shape} does not map {a} -> {d}")
        return d


@dataclass(frozen=True)
class ReLU(Op):
    mnemonic = "relu"

    def out_dim(self, arg_dims):
        _expect(len(arg_dims) == 1, "relu takes one operand")
        return arg_dims[0]


@dataclass(frozen=True)
class Multi(Op):
    """Elementwise product u*v of two per-step values (the multiplicative gate)."""

    mnemonic = "multi"

    def out_dim(self, arg_dims):
        _expect(len(arg_dims) == 2 and arg_dims[0] == arg_dims[1], "multi takes two operands of equal dim")
        return arg_dims[0]


@dataclass(frozen=True)
class Concat(Op):
    mnemonic = "concat"

    def out_dim(self, arg_dims):
        _expect(len(arg_dims) >= 1, "concat takes operands")
        return sum(arg_dims)


@dataclass(frozen=True)
class Slice(Op):
    """Select components (any order, repeats allowed) of one operand."""

    indices: tuple[int, ...]
    mnemonic = "slice"

    def out_dim(self, arg_dims):
        _expect(len(arg_dims) == 1, "slice takes one operand")
        _expect(all(0 <= i < arg_dims[0] for i in self.indices), "slice index out of range")
        return len(self.indices)


@dataclass(frozen=True)
class LinState(Op):
    """s_t = A s_{t-1} + B x_t + bias with s_0 = init; readers see s_t. No operand means B x_t = 0."""

    A: Coeffs
    B: Coeffs | None
    bias: Coeffs
    init: Coeffs
    mnemonic = "linstate"

    def out_dim(self, arg_dims):
        (d,) = self.init.shape
        _expect(self.A.shape == (d, d) and self.bias.shape == (d,), "A must be d x d and bias of dim d")
        if self.B is None:
            _expect(not arg_dims, "a state without B takes no operand")
        else:
            _expect(len(arg_dims) == 1 and self.B.shape == (d, arg_dims[0]), "B must be d x dim(input)")
        return d


def _expect(cond: bool, msg: str) -> None:
    if not cond:
        raise IRError(msg)


# ---------------------------------------------------------------- graph


@dataclass(frozen=True)
class Node:
    id: int
    op: Op
    args: tuple[int, ...]
    dim: int
    span: Span | None = None
    label: str | None = None  # the program variable this value was bound to, if any


@dataclass(frozen=True)
class Graph:
    """Nodes in topological order (operands before users); one input, one output, named probes."""

    nodes: tuple[Node, ...]
    input: int
    output: int
    probes: tuple[tuple[str, int], ...] = ()
    name: str = "program"
    meta: dict = field(default_factory=dict, compare=False, hash=False)
    check: InitVar[bool] = True  # False only for graphs a GraphBuilder made (it checks the nodes it builds)

    def __post_init__(self, check: bool):
        if check:
            self.validate()

    @cached
    def by_id(self) -> dict[int, Node]:
        return {n.id: n for n in self.nodes}

    def __getitem__(self, node_id: int) -> Node:
        return self.by_id[node_id]

    def __iter__(self) -> Iterator[Node]:
        return iter(self.nodes)

    def __len__(self) -> int:
        return len(self.nodes)

    @property
    def input_dim(self) -> int:
        return self[self.input].dim

    @property
    def output_dim(self) -> int:
        return self[self.output].dim

    @cached
    def users(self) -> dict[int, list[int]]:
        out: dict[int, list[int]] = {n.id: [] for n in self.nodes}
        for n in self.nodes:
            for a in n.args:
                out[a].append(n.id)
        return out

    def roots(self) -> list[int]:
        """Values the program exposes: the output and every probe."""
        return [self.output, *(i for _, i in self.probes)]

    def validate(self) -> None:
        seen: set[int] = set()
        for n in self.nodes:
            _expect(n.id not in seen, f"duplicate node id %{n.id}")
            for a in n.args:
                _expect(a in seen, f"%{n.id} uses %{a} before it is defined")
            dims = tuple(self.by_id[a].dim for a in n.args)
            _expect(n.op.out_dim(dims) == n.dim, f"%{n.id}: dim {n.dim} does not match its op")
            seen.add(n.id)
        _expect(self.input in seen and isinstance(self[self.input].op, Input), "graph input must be an Input node")
        _expect(sum(isinstance(n.op, Input) for n in self.nodes) == 1, "exactly one Input node")
        for r in self.roots():
            _expect(r in seen, f"root %{r} missing")

    def stats(self) -> dict[str, int]:
        """Node count, summed output dims, and counts per op kind."""
        return dict(self._stats)

    @cached
    def _stats(self) -> dict[str, int]:  # a pass pipeline asks each intermediate graph twice
        out = {"nodes": len(self.nodes), "dims": sum(n.dim for n in self.nodes)}
        for n in self.nodes:
            out[n.op.mnemonic] = out.get(n.op.mnemonic, 0) + 1
        return out

    @property
    def exact(self) -> bool:
        """True when every coefficient is rational (the exact interpreter can run it)."""
        return all(c.exact for n in self.nodes for c in coeffs_of(n.op))


def coeffs_of(op: Op) -> list[Coeffs]:
    if isinstance(op, Linear):
        return [*op.mats, op.bias]
    if isinstance(op, LinState):
        return [c for c in (op.A, op.B, op.bias, op.init) if c is not None]
    return []
