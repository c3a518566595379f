"""Plain PyTorch sequential-loop references for the scan kernels (fp32 state, fp64 when given fp64)."""

from __future__ import annotations

import torch
import torch.nn.functional as F


def compute_dtype(*tensors: torch.Tensor | None) -> torch.dtype:
    """fp64 if any given tensor is fp64, else fp32: the state/accumulation dtype of the references."""
    if any(t is not None and t.dtype == torch.float64 for t in tensors):
        return torch.float64
    return torch.float32


def linear_scan_ref(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None = None,
    return_last_state: bool = False,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """h_t = a_t * h_{t-1} + b_t over (batch, time, dim); output dtype promote(a, b), last state fp32/64."""
    cd = compute_dtype(a, b, h0)
    batch, length, dim = b.shape
    a_c, b_c = a.to(cd), b.to(cd)
    h = torch.zeros(batch, dim, dtype=cd, device=b.device) if h0 is None else h0.to(cd)
    out = torch.empty(batch, length, dim, dtype=cd, device=b.device)
    for t in range(length):
        h = a_c[:, t] * h + b_c[:, t]
        out[:, t] = h
    out = out.to(torch.promote_types(a.dtype, b.dtype))
    return (out, h) if return_last_state else out


def selective_scan_ref(
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
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Mamba-1 selective scan; layouts u/delta/z (b, D, L), A (D, N), B/C (b, N, L), h0 (b, D, N)."""
    cd = compute_dtype(u, delta, A, B, C, D, z, delta_bias, h0)
    batch, dim, length = u.shape
    u_c, dt = u.to(cd), delta.to(cd)
    if delta_bias is not None:
        dt = dt + delta_bias.to(cd)[:, None]
    if delta_softplus:
        dt = F.softplus(dt)
    A_c, B_c, C_c = A.to(cd), B.to(cd), C.to(cd)
    h = torch.zeros(batch, dim, A.shape[1], dtype=cd, device=u.device) if h0 is None else h0.to(cd)
    y = torch.empty(batch, dim, length, dtype=cd, device=u.device)
    # Per-step exp keeps memory at O(b*D*N) instead of materialising (b, D, L, N).
    for t in range(length):
        decay = torch.exp(dt[:, :, t, None] * A_c)
        h = decay * h + (dt[:, :, t] * u_c[:, :, t])[:, :, None] * B_c[:, None, :, t]
        y[:, :, t] = (h * C_c[:, None, :, t]).sum(-1)
    if D is not None:
        y = y + D.to(cd)[:, None] * u_c
    if z is not None:
        y = y * F.silu(z.to(cd))
    y = y.to(u.dtype)
    return (y, h) if return_last_state else y
