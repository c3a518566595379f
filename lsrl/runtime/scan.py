"""Public scan API (linear_scan, selective_scan) dispatching to the torch loop or the Triton kernels."""

from __future__ import annotations

import importlib
import os
from types import ModuleType
from typing import Literal

import torch

from lsrl.runtime.scan_ref import linear_scan_ref, selective_scan_ref

ScanImpl = Literal["auto", "torch", "triton"]
IMPL_ENV_VAR = "LSRL_SCAN_IMPL"
KERNEL_DTYPES = (torch.float32, torch.float16, torch.bfloat16)
_INSTALL_HINT = (
    "install it with `pip install 'triton>=3.0'` (or `pip install lsrl[triton]`), or pass impl='torch'"
)

__all__ = [
    "IMPL_ENV_VAR",
    "ScanBackendUnavailable",
    "ScanImpl",
    "linear_scan",
    "resolve_impl",
    "selective_scan",
    "triton_available",
]


class ScanBackendUnavailable(RuntimeError):
    """The Triton scan path was requested (or needed for CUDA tensors) but cannot run here."""


def load_triton_backend() -> ModuleType:
    """Import the kernel module on first use so that lsrl imports without triton."""
    try:
        return importlib.import_module("lsrl.runtime.scan_triton")
    except ImportError as exc:
        raise ScanBackendUnavailable(
            f"the Triton scan kernels need the `triton` package: {_INSTALL_HINT}"
        ) from exc


def triton_available() -> bool:
    """True when the Triton kernel module imports."""
    try:
        load_triton_backend()
    except ScanBackendUnavailable:
        return False
    return True


def _interpreting() -> bool:
    return os.environ.get("TRITON_INTERPRET", "0").strip().lower() in ("1", "true", "on", "yes")


def resolve_impl(impl: str | None, tensors: list[torch.Tensor | None]) -> Literal["torch", "triton"]:
    """Pick the path: explicit `impl`, else $LSRL_SCAN_IMPL, else auto (CUDA and non-fp64 -> triton)."""
    choice = (impl if impl is not None else os.environ.get(IMPL_ENV_VAR, "auto")).strip().lower()
    if choice not in ("auto", "torch", "triton"):
        raise ValueError(f"scan impl must be 'auto', 'torch' or 'triton', got {choice!r}")
    present = [t for t in tensors if t is not None]
    on_cuda = present[0].device.type == "cuda"
    # fp64 inputs stay on the torch loop under auto: the kernels would silently accumulate in fp32.
    kernel_dtypes = all(t.dtype in KERNEL_DTYPES for t in present)
    if choice == "torch" or (choice == "auto" and not (on_cuda and kernel_dtypes)):
        return "torch"
    if not kernel_dtypes:
        bad = sorted({str(t.dtype) for t in present if t.dtype not in KERNEL_DTYPES})
        raise ValueError(
            f"Triton scan kernels take float32/float16/bfloat16 tensors, got {bad}; use impl='torch'"
        )
    if not on_cuda and not _interpreting():
        raise ScanBackendUnavailable(
            "Triton scan kernels need CUDA tensors (or TRITON_INTERPRET=1 for CPU tensors); pass impl='torch'"
        )
    load_triton_backend()
    return "triton"


def _check(cond: bool, message: str) -> None:
    if not cond:
        raise ValueError(message)


def _check_common(tensors: dict[str, torch.Tensor | None]) -> None:
    present = {k: t for k, t in tensors.items() if t is not None}
    devices = {t.device for t in present.values()}
    _check(len(devices) == 1, f"scan inputs must be on one device, got {sorted(map(str, devices))}")
    for name, t in present.items():
        _check(t.is_floating_point(), f"{name} must be a real floating tensor, got {t.dtype}")


def linear_scan(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    return_last_state: bool = False,
    *,
    impl: ScanImpl | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """h_t = a_t * h_{t-1} + b_t over (batch, time, dim) with fp32 state.

    `a` broadcasts against `b`; h0 is (batch, dim). Returns h in promote(a, b) dtype, plus the fp32 final
    state (fp64 on the fp64 torch path) when `return_last_state`.
    """
    _check_common({"a": a, "b": b, "h0": h0})
    if a.shape != b.shape:
        try:
            a, b = torch.broadcast_tensors(a, b)  # stride-0 views, no copy
        except RuntimeError as exc:
            raise ValueError(f"a {tuple(a.shape)} does not broadcast against b {tuple(b.shape)}") from exc
    _check(b.dim() == 3, f"linear_scan expects (batch, time, dim) inputs, got shape {tuple(b.shape)}")
    batch, _, dim = b.shape
    if h0 is not None:
        _check(h0.shape == (batch, dim), f"h0 must be (batch, dim) = {(batch, dim)}, got {tuple(h0.shape)}")
    if resolve_impl(impl, [a, b, h0]) == "torch":
        return linear_scan_ref(a, b, h0, return_last_state)
    return load_triton_backend().linear_scan_triton(a, b, h0, return_last_state)


def _check_selective(tensors: dict[str, torch.Tensor | None]) -> None:
    u, A = tensors["u"], tensors["A"]
    _check(u.dim() == 3, f"u must be (batch, dim, length), got shape {tuple(u.shape)}")
    batch, dim, length = u.shape
    _check(
        A.dim() == 2 and A.shape[0] == dim, f"A must be (dim, d_state) with dim={dim}, got {tuple(A.shape)}"
    )
    n_state = A.shape[1]
    expected = {
        "delta": (batch, dim, length),
        "B": (batch, n_state, length),
        "C": (batch, n_state, length),
        "D": (dim,),
        "z": (batch, dim, length),
        "delta_bias": (dim,),
        "h0": (batch, dim, n_state),
    }
    for name, shape in expected.items():
        t = tensors[name]
        if t is not None:
            _check(tuple(t.shape) == shape, f"{name} must have shape {shape}, got {tuple(t.shape)}")


def selective_scan(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None = None,
    z: torch.Tensor | None = None,
    delta_bias: torch.Tensor | None = None,
    delta_softplus: bool = False,
    h0: torch.Tensor | None = None,
    return_last_state: bool = False,
    *,
    impl: ScanImpl | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Mamba-1 selective scan with mamba_ssm's `selective_scan_fn` layouts and semantics.

    u, delta, z: (batch, dim, L); A: (dim, N); B, C: (batch, N, L); D, delta_bias: (dim,);
    h0: (batch, dim, N).
    Output has u's dtype; the final state is fp32 (fp64 on the fp64 torch path).
    """
    tensors = {
        "u": u,
        "delta": delta,
        "A": A,
        "B": B,
        "C": C,
        "D": D,
        "z": z,
        "delta_bias": delta_bias,
        "h0": h0,
    }
    _check_common(tensors)
    _check_selective(tensors)
    if resolve_impl(impl, list(tensors.values())) == "torch":
        return selective_scan_ref(u, delta, A, B, C, D, z, delta_bias, delta_softplus, h0, return_last_state)
    return load_triton_backend().selective_scan_triton(
        u, delta, A, B, C, D, z, delta_bias, delta_softplus, h0, return_last_state
    )
