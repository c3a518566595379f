"""Triton forward kernels for the linear scan and the Mamba-1 selective scan (fp32 state in registers)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import triton
import triton.language as tl


@triton.jit
def _affine_combine(a_l, b_l, a_r, b_r):
    # Composition of h -> a_l*h + b_l followed by h -> a_r*h + b_r (associative, not commutative).
    return a_r * a_l, a_r * b_l + b_r


@triton.jit
def _softplus(x):
    # torch.nn.functional.softplus (threshold 20). libdevice log1p is unavailable in the interpreter, so
    # very negative x uses softplus(x) ~ exp(x), where log(1 + exp(x)) would round to 0.
    e = tl.exp(tl.minimum(x, 20.0))
    return tl.where(x > 20.0, x, tl.where(x < -15.0, e, tl.log(1.0 + e)))


@triton.jit
def _keep_layout(x, R: tl.constexpr, C: tl.constexpr, UNIT_AXIS: tl.constexpr):
    # Identity on an [R, C] tile, written as a sum over a unit axis. It stops triton 3.6 from moving the
    # layout change of a later 3-D broadcast up to the 16-bit load, which would repeat the per-tile math
    # and the bf16->fp32 conversions in every warp sharing a value (sm_90 SASS of the bf16 selective scan:
    # 23.8 -> 13.0 instructions per state update; 3.9 is unaffected). UNIT_AXIS must differ from the axis
    # the caller broadcasts along, or the 3-D tensors inherit this layout.
    if UNIT_AXIS == 1:
        return tl.sum(tl.reshape(x, [R, 1, C]), axis=1)
    else:
        return tl.sum(tl.reshape(x, [R, C, 1]), axis=2)


@triton.jit
def _linear_scan_kernel(
    a_ptr, b_ptr, h0_ptr, out_ptr, last_ptr,
    L, DIM,
    s_ab, s_at, s_ad, s_bb, s_bt, s_bd, s_ob, s_ot, s_od,
    HAS_H0: tl.constexpr, STORE_LAST: tl.constexpr, BLOCK_T: tl.constexpr, BLOCK_D: tl.constexpr,
):  # fmt: skip
    # Tiles are (time, channel) with channels on lanes/warps, so each thread scans a run of BLOCK_T steps
    # of one channel sequentially in registers (the combine's cross-thread phase is empty).
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_t = tl.arange(0, BLOCK_T)
    mask_d = offs_d < DIM
    # In-tile offsets stay int32; the tile origin moves as a 64-bit scalar pointer.
    tile_a = offs_t[:, None] * s_at + offs_d[None, :] * s_ad
    tile_b = offs_t[:, None] * s_bt + offs_d[None, :] * s_bd
    tile_o = offs_t[:, None] * s_ot + offs_d[None, :] * s_od
    a_row = a_ptr + pid_b * s_ab
    b_row = b_ptr + pid_b * s_bb
    o_row = out_ptr + pid_b * s_ob
    if HAS_H0:
        h = tl.load(h0_ptr + pid_b * DIM + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BLOCK_D], dtype=tl.float32)
    first = offs_t[:, None] == 0
    last = offs_t[:, None] == BLOCK_T - 1
    # Padded steps are the identity map (a=1, b=0), so the tile's last row is the carried state.
    mask = (offs_t[:, None] < L) & mask_d[None, :]
    a_next = tl.load(a_row + tile_a, mask=mask, other=1.0)
    b_next = tl.load(b_row + tile_b, mask=mask, other=0.0)
    for t0 in range(0, L, BLOCK_T):
        a = a_next.to(tl.float32)
        b = b_next.to(tl.float32)
        store_mask = mask
        # Register double-buffering: the next tile's loads are in flight while this tile is scanned.
        a_row += BLOCK_T * s_at
        b_row += BLOCK_T * s_bt
        mask = ((t0 + BLOCK_T + offs_t)[:, None] < L) & mask_d[None, :]
        a_next = tl.load(a_row + tile_a, mask=mask, other=1.0)
        b_next = tl.load(b_row + tile_b, mask=mask, other=0.0)
        b = tl.where(first, b + a * h[None, :], b)
        _, hs = tl.associative_scan((a, b), axis=0, combine_fn=_affine_combine)
        tl.store(o_row + tile_o, hs.to(out_ptr.dtype.element_ty), mask=store_mask)
        h = tl.sum(tl.where(last, hs, 0.0), axis=0)
        o_row += BLOCK_T * s_ot
    if STORE_LAST:
        tl.store(last_ptr + pid_b * DIM + offs_d, h, mask=mask_d)


@triton.jit
def _selective_scan_kernel(
    u_ptr, dt_ptr, A_ptr, B_ptr, C_ptr, D_ptr, z_ptr, bias_ptr, h0_ptr, out_ptr, last_ptr,
    L, DIM, N,
    s_ub, s_ud, s_ul, s_db, s_dd, s_dl, s_ad, s_an, s_bb, s_bn, s_bl, s_cb, s_cn, s_cl,
    s_zb, s_zd, s_zl, s_ob, s_od, s_ol,
    HAS_D: tl.constexpr, HAS_Z: tl.constexpr, HAS_BIAS: tl.constexpr, SOFTPLUS: tl.constexpr,
    HAS_H0: tl.constexpr, STORE_LAST: tl.constexpr,
    BLOCK_D: tl.constexpr, BLOCK_N: tl.constexpr, BLOCK_T: tl.constexpr,
):  # fmt: skip
    # 3-D tiles are (time, state, channel). The compiler's default layout spreads the last axis over lanes
    # and keeps the leading axis inside each thread, so the scan over time is a sequential in-register
    # recurrence and the sum over states needs few cross-lane steps.
    pid_d = tl.program_id(0)
    pid_b = tl.program_id(1).to(tl.int64)
    offs_d = pid_d * BLOCK_D + tl.arange(0, BLOCK_D)
    offs_n = tl.arange(0, BLOCK_N)
    offs_t = tl.arange(0, BLOCK_T)
    mask_d = offs_d < DIM
    mask_n = offs_n < N
    mask_nd = mask_n[:, None] & mask_d[None, :]
    # exp(dt*A) = exp2(dt*A*log2(e)); padded states get A=0, B=C=0 and stay inert.
    A2 = tl.load(A_ptr + offs_n[:, None] * s_an + offs_d[None, :] * s_ad, mask=mask_nd, other=0.0)
    A2 = A2.to(tl.float32) * 1.4426950408889634
    if HAS_BIAS:
        bias = tl.load(bias_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    if HAS_D:
        d_skip = tl.load(D_ptr + offs_d, mask=mask_d, other=0.0).to(tl.float32)
    state_offs = pid_b * DIM * N + offs_n[:, None] + offs_d[None, :] * N
    if HAS_H0:
        h = tl.load(h0_ptr + state_offs, mask=mask_nd, other=0.0).to(tl.float32)
    else:
        h = tl.zeros([BLOCK_N, BLOCK_D], dtype=tl.float32)
    tile_u = offs_t[:, None] * s_ul + offs_d[None, :] * s_ud
    tile_dt = offs_t[:, None] * s_dl + offs_d[None, :] * s_dd
    tile_o = offs_t[:, None] * s_ol + offs_d[None, :] * s_od
    tile_b = offs_t[:, None] * s_bl + offs_n[None, :] * s_bn
    tile_c = offs_t[:, None] * s_cl + offs_n[None, :] * s_cn
    u_row = u_ptr + pid_b * s_ub
    dt_row = dt_ptr + pid_b * s_db
    o_row = out_ptr + pid_b * s_ob
    b_row = B_ptr + pid_b * s_bb
    c_row = C_ptr + pid_b * s_cb
    if HAS_Z:
        tile_z = offs_t[:, None] * s_zl + offs_d[None, :] * s_zd
        z_row = z_ptr + pid_b * s_zb
    first = offs_t[:, None, None] == 0
    last = offs_t[:, None, None] == BLOCK_T - 1
    for t0 in range(0, L, BLOCK_T):
        mask_t = (t0 + offs_t) < L
        mask = mask_t[:, None] & mask_d[None, :]
        mask_bc = mask_t[:, None] & mask_n[None, :]
        u = tl.load(u_row + tile_u, mask=mask, other=0.0).to(tl.float32)
        dt = tl.load(dt_row + tile_dt, mask=mask, other=0.0).to(tl.float32)
        if HAS_BIAS:
            dt += bias[None, :]
        if SOFTPLUS:
            dt = _softplus(dt)
        # dt=0 on padded steps makes them the identity (decay 1, input 0) for the state carry.
        dt = tl.where(mask, dt, 0.0)
        dt = _keep_layout(dt, BLOCK_T, BLOCK_D, 2)
        u = _keep_layout(u, BLOCK_T, BLOCK_D, 2)
        Bt = tl.load(b_row + tile_b, mask=mask_bc, other=0.0).to(tl.float32)
        Ct = tl.load(c_row + tile_c, mask=mask_bc, other=0.0).to(tl.float32)
        Bt = _keep_layout(Bt, BLOCK_T, BLOCK_N, 1)
        Ct = _keep_layout(Ct, BLOCK_T, BLOCK_N, 1)
        decay = tl.exp2(dt[:, None, :] * A2[None, :, :])  # [BLOCK_T, BLOCK_N, BLOCK_D], registers only
        inp = (dt * u)[:, None, :] * Bt[:, :, None]
        inp = tl.where(first, inp + decay * h[None, :, :], inp)
        _, hs = tl.associative_scan((decay, inp), axis=0, combine_fn=_affine_combine)
        y = tl.sum(hs * Ct[:, :, None], axis=1)
        h = tl.sum(tl.where(last, hs, 0.0), axis=0)
        if HAS_D:
            y += d_skip[None, :] * u
        if HAS_Z:
            z = tl.load(z_row + tile_z, mask=mask, other=0.0).to(tl.float32)
            y *= z * tl.sigmoid(z)
            z_row += BLOCK_T * s_zl
        tl.store(o_row + tile_o, y.to(out_ptr.dtype.element_ty), mask=mask)
        u_row += BLOCK_T * s_ul
        dt_row += BLOCK_T * s_dl
        o_row += BLOCK_T * s_ol
        b_row += BLOCK_T * s_bl
        c_row += BLOCK_T * s_cl
    if STORE_LAST:
        tl.store(last_ptr + state_offs, h, mask=mask_nd)


@dataclass(frozen=True)
class ScanConfig:
    """Launch parameters; block sizes are powers of two (tl.arange requires it)."""

    block_t: int
    block_d: int
    num_warps: int


def _sm_count(device: torch.device) -> int:
    if device.type == "cuda":
        return torch.cuda.get_device_properties(device).multi_processor_count
    return 1


def linear_scan_config(
    batch: int, length: int, dim: int, device: torch.device, sm_count: int | None = None
) -> ScanConfig:
    """One channel per lane, one warp per 32 channels, 16-step runs per thread (no spills on sm_90).

    Narrows the channel block (fewer warps per program) while there are fewer than two programs per SM.
    """
    block_d = min(128, max(32, triton.next_power_of_2(dim)))
    sms = sm_count or _sm_count(device)
    while block_d > 32 and batch * triton.cdiv(dim, block_d) < 2 * sms:
        block_d //= 2
    block_t = min(16, max(4, triton.next_power_of_2(length)))
    return ScanConfig(block_t=block_t, block_d=block_d, num_warps=block_d // 32)


def selective_scan_config(
    batch: int, length: int, dim: int, n_state: int, device: torch.device, sm_count: int | None = None
) -> ScanConfig:
    """32 channels on lanes share each B/C load; at most 16 steps and ~64 state updates per thread per tile.

    Chosen from register counts and SASS of sm_90 builds (see docs/kernels.md); to be tuned on a GPU.
    """
    block_n = triton.next_power_of_2(n_state)
    block_d = 32 if batch * triton.cdiv(dim, 32) >= 2 * (sm_count or _sm_count(device)) else 16
    num_warps = 4 if block_n <= 16 else 8
    block_t = max(1, min(16, 64 * 32 * num_warps // (block_d * block_n)))
    block_t = min(block_t, max(4, triton.next_power_of_2(length)))
    return ScanConfig(block_t=block_t, block_d=block_d, num_warps=num_warps)


def _pow2(name: str, value: int) -> int:
    if value < 1 or value & (value - 1):
        raise ValueError(f"{name} must be a power of two, got {value}")
    return value


def _resolve(
    default: ScanConfig, block_t: int | None, block_d: int | None, num_warps: int | None
) -> ScanConfig:
    return ScanConfig(
        block_t=_pow2("block_t", block_t or default.block_t),
        block_d=_pow2("block_d", block_d or default.block_d),
        num_warps=_pow2("num_warps", num_warps or default.num_warps),
    )


def _check_int32_offsets(block_t: int, *tensors: torch.Tensor | None) -> None:
    # Only the batch offset is 64-bit in the kernels; offsets inside one batch element are int32.
    for t in tensors:
        if t is not None and t.dim() == 3:
            span = sum((n - 1) * abs(s) for n, s in zip(t.shape[1:], t.stride()[1:], strict=True))
            if span + block_t * max(abs(s) for s in t.stride()[1:]) >= 2**31:
                raise ValueError(f"one batch element of a {tuple(t.shape)} tensor spans >= 2**31 elements")


def linear_scan_triton(
    a: torch.Tensor,
    b: torch.Tensor,
    h0: torch.Tensor | None,
    return_last_state: bool,
    *,
    block_t: int | None = None,
    block_d: int | None = None,
    num_warps: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Launch the linear-scan kernel; inputs are validated and broadcast by the caller."""
    batch, length, dim = b.shape
    out = torch.empty(b.shape, dtype=torch.promote_types(a.dtype, b.dtype), device=b.device)
    last = torch.empty(batch, dim, dtype=torch.float32, device=b.device)
    h0_c = None if h0 is None else h0.to(torch.float32).contiguous()
    cfg = _resolve(linear_scan_config(batch, length, dim, b.device), block_t, block_d, num_warps)
    _check_int32_offsets(cfg.block_t, a, b, out)
    if out.numel() > 0:
        grid = (triton.cdiv(dim, cfg.block_d), batch)
        _linear_scan_kernel[grid](
            a, b, h0_c if h0_c is not None else last, out, last,
            length, dim,
            *a.stride(), *b.stride(), *out.stride(),
            HAS_H0=h0_c is not None, STORE_LAST=return_last_state,
            BLOCK_T=cfg.block_t, BLOCK_D=cfg.block_d, num_warps=cfg.num_warps,
        )  # fmt: skip
    elif return_last_state:
        last = h0_c if h0_c is not None else last.zero_()
    return (out, last) if return_last_state else out


def selective_scan_triton(
    u: torch.Tensor,
    delta: torch.Tensor,
    A: torch.Tensor,
    B: torch.Tensor,
    C: torch.Tensor,
    D: torch.Tensor | None,
    z: torch.Tensor | None,
    delta_bias: torch.Tensor | None,
    delta_softplus: bool,
    h0: torch.Tensor | None,
    return_last_state: bool,
    *,
    block_t: int | None = None,
    block_d: int | None = None,
    num_warps: int | None = None,
) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
    """Launch the selective-scan kernel; inputs are validated by the caller."""
    batch, dim, length = u.shape
    n_state = A.shape[1]
    out = torch.empty_like(u, memory_format=torch.contiguous_format)
    last = torch.empty(batch, dim, n_state, dtype=torch.float32, device=u.device)
    h0_c = None if h0 is None else h0.to(torch.float32).contiguous()
    cfg = _resolve(selective_scan_config(batch, length, dim, n_state, u.device), block_t, block_d, num_warps)
    _check_int32_offsets(cfg.block_t, u, delta, B, C, z, out)
    D = None if D is None else D.contiguous()
    delta_bias = None if delta_bias is None else delta_bias.contiguous()
    if out.numel() > 0:
        grid = (triton.cdiv(dim, cfg.block_d), batch)
        z_arg = z if z is not None else u  # dummy pointer, never read when HAS_Z is False
        _selective_scan_kernel[grid](
            u, delta, A, B, C,
            D if D is not None else A, z_arg, delta_bias if delta_bias is not None else A,
            h0_c if h0_c is not None else last, out, last,
            length, dim, n_state,
            *u.stride(), *delta.stride(), *A.stride(), *B.stride(), *C.stride(),
            *z_arg.stride(), *out.stride(),
            HAS_D=D is not None, HAS_Z=z is not None, HAS_BIAS=delta_bias is not None,
            SOFTPLUS=bool(delta_softplus), HAS_H0=h0_c is not None, STORE_LAST=return_last_state,
            BLOCK_D=cfg.block_d, BLOCK_N=triton.next_power_of_2(n_state), BLOCK_T=cfg.block_t,
            num_warps=cfg.num_warps,
        )  # fmt: skip
    elif return_last_state:
        last = h0_c if h0_c is not None else last.zero_()
    return (out, last) if return_last_state else out
