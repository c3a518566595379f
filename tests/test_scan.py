"""Scan kernels: torch references vs closed-form oracles, Triton kernels (CPU interpreter) vs fp64 loops."""

import os

# Must precede any triton import; lsrl imports triton lazily, so setting it here is early enough.
os.environ.setdefault("TRITON_INTERPRET", "1")

import importlib.util
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from lsrl.runtime import scan as scan_mod
from lsrl.runtime.scan import ScanBackendUnavailable, linear_scan, selective_scan
from lsrl.runtime.scan_ref import linear_scan_ref, selective_scan_ref

ROOT = Path(__file__).resolve().parents[1]
TRITON_OK = importlib.util.find_spec("triton") is not None and os.environ.get("TRITON_INTERPRET") == "1"
needs_triton = pytest.mark.skipif(not TRITON_OK, reason="needs triton and TRITON_INTERPRET=1")

# Relative size of one output ulp per dtype (the interpreter truncates fp32->bf16, so a full ulp).
ULP = {torch.float32: 2.0**-23, torch.float16: 2.0**-10, torch.bfloat16: 2.0**-7}


def assert_close_scaled(
    out: torch.Tensor, ref: torch.Tensor, dtype: torch.dtype, fp32_rel: float = 2e-5
) -> None:
    """|out - ref| <= ulp(dtype)*|ref| + fp32_rel*max|ref|: output rounding plus fp32 accumulation error."""
    ref64, out64 = ref.double(), out.double()
    scale = ref64.abs().max().item() + 1e-30
    bound = 1.5 * ULP[dtype] * ref64.abs() + fp32_rel * scale
    err = (out64 - ref64).abs()
    assert torch.isfinite(out64).all()
    worst = (err - bound).max().item()
    assert worst <= 0, f"max err {err.max().item():.3e} exceeds bound (scale {scale:.3e}, dtype {dtype})"


# ---------------------------------------------------------------------------------------------------
# Independent oracles (closed forms in numpy float64, no recurrence loop)


def linear_oracle(a: np.ndarray, b: np.ndarray, h0: np.ndarray | None) -> np.ndarray:
    """h_t = sum_{s<=t} (prod_{s<r<=t} a_r) b_s + (prod_{r<=t} a_r) h0."""
    batch, length, dim = b.shape
    out = np.zeros((batch, length, dim))
    for t in range(length):
        for s in range(t + 1):
            out[:, t] += np.prod(a[:, s + 1 : t + 1], axis=1) * b[:, s]
        if h0 is not None:
            out[:, t] += np.prod(a[:, : t + 1], axis=1) * h0
    return out


Arr = np.ndarray


def selective_oracle(
    u: Arr, delta: Arr, A: Arr, B: Arr, C: Arr, D: Arr | None = None, z: Arr | None = None,
    delta_bias: Arr | None = None, softplus: bool = False, h0: Arr | None = None,
) -> Arr:  # fmt: skip
    """y_t = sum_n C_t[n] h_t[n] (+ D u, * silu z), closed form without recurrence:

    h_t = sum_{s<=t} exp(A sum_{s<r<=t} dt_r) dt_s B_s u_s + exp(A sum_{r<=t} dt_r) h0.
    """
    dt = delta + (0.0 if delta_bias is None else delta_bias[None, :, None])
    if softplus:
        dt = np.log1p(np.exp(dt))
    batch, dim, length = u.shape
    cum = np.cumsum(dt, axis=-1)  # (b, D, L)
    y = np.zeros((batch, dim, length))
    for t in range(length):
        # decay[b, d, s, n] = exp(A[d, n] * (cum_t - cum_s)) for s <= t
        gap = cum[:, :, t : t + 1] - cum[:, :, : t + 1]
        decay = np.exp(gap[..., None] * A[None, :, None, :])
        contrib = (
            decay
            * (dt[:, :, : t + 1] * u[:, :, : t + 1])[..., None]
            * B[:, None, :, : t + 1].transpose(0, 1, 3, 2)
        )
        h = contrib.sum(axis=2)
        if h0 is not None:
            h = h + np.exp(A[None] * cum[:, :, t, None]) * h0
        y[:, :, t] = (h * C[:, None, :, t]).sum(-1)
    if D is not None:
        y = y + D[None, :, None] * u
    if z is not None:
        y = y * z / (1.0 + np.exp(-z))
    return y


def np64(*tensors: torch.Tensor | None) -> list[np.ndarray | None]:
    return [None if t is None else t.double().numpy() for t in tensors]


def make_selective(
    batch: int, dim: int, length: int, n: int, dtype: torch.dtype, seed: int, full: bool = True
) -> dict[str, torch.Tensor | None]:
    """Mamba-like inputs: A < 0, delta pre-activations ~ N(-1, 0.5^2) (softplus of them ~ 0.2 .. 0.6)."""
    g = torch.Generator().manual_seed(seed)
    u = torch.randn(batch, dim, length, generator=g)
    delta = torch.randn(batch, dim, length, generator=g) * 0.5 - 1.0
    A = -torch.rand(dim, n, generator=g) * 2.0 - 0.1
    B = torch.randn(batch, n, length, generator=g)
    C = torch.randn(batch, n, length, generator=g)
    D = torch.randn(dim, generator=g) if full else None
    z = torch.randn(batch, dim, length, generator=g) if full else None
    bias = torch.randn(dim, generator=g) * 0.3 if full else None
    h0 = torch.randn(batch, dim, n, generator=g) if full else None
    acts = dict(u=u, delta=delta, B=B, C=C, z=z)  # activations take the test dtype; parameters stay fp32
    acts = {k: None if v is None else v.to(dtype) for k, v in acts.items()}
    if dtype == torch.float64:
        A, D, bias, h0 = (None if t is None else t.double() for t in (A, D, bias, h0))
    return dict(**acts, A=A, D=D, delta_bias=bias, h0=h0)


# ---------------------------------------------------------------------------------------------------
# Torch path vs oracles


@pytest.mark.parametrize("with_h0", [False, True])
def test_linear_ref_matches_closed_form(with_h0: bool) -> None:
    g = torch.Generator().manual_seed(1)
    a = torch.rand(2, 13, 5, generator=g, dtype=torch.float64) * 1.6 - 0.8  # signs and |a|<1 both exercised
    b = torch.randn(2, 13, 5, generator=g, dtype=torch.float64)
    h0 = torch.randn(2, 5, generator=g, dtype=torch.float64) if with_h0 else None
    out, last = linear_scan(a, b, h0, return_last_state=True, impl="torch")
    expected = linear_oracle(*np64(a, b, h0))
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(last.numpy(), expected[:, -1], rtol=1e-12, atol=1e-12)
    assert out.dtype == torch.float64 and last.dtype == torch.float64


def test_linear_ref_fp32_state_and_broadcast_gate() -> None:
    g = torch.Generator().manual_seed(2)
    a = torch.rand(1, 1, 6, generator=g)  # time- and batch-invariant decay, broadcast against b
    b = torch.randn(3, 9, 6, generator=g).to(torch.bfloat16)
    out, last = linear_scan(a, b, return_last_state=True, impl="torch")
    expected = linear_oracle(*np64(a.expand(3, 9, 6), b, None))
    assert out.dtype == torch.float32 and last.dtype == torch.float32  # promote(fp32, bf16)
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-5, atol=1e-5)


@pytest.mark.parametrize("full", [False, True])
def test_selective_ref_matches_closed_form(full: bool) -> None:
    x = make_selective(2, 5, 11, 3, torch.float64, seed=3, full=full)
    out, last = selective_scan(**x, delta_softplus=full, return_last_state=True, impl="torch")
    expected = selective_oracle(
        *np64(x["u"], x["delta"], x["A"], x["B"], x["C"], x["D"], x["z"], x["delta_bias"]),
        softplus=full,
        h0=None if x["h0"] is None else x["h0"].numpy(),
    )
    np.testing.assert_allclose(out.numpy(), expected, rtol=1e-10, atol=1e-10)
    assert last.shape == (2, 5, 3) and last.dtype == torch.float64


def test_selective_ref_dtypes() -> None:
    x = make_selective(1, 4, 6, 2, torch.bfloat16, seed=4)
    out, last = selective_scan(**x, delta_softplus=True, return_last_state=True, impl="torch")
    assert out.dtype == torch.bfloat16 and last.dtype == torch.float32


# ---------------------------------------------------------------------------------------------------
# Triton kernels (interpreter) vs the fp64 loop


def run_linear_triton(
    a: torch.Tensor, b: torch.Tensor, h0: torch.Tensor | None, dtype: torch.dtype, **blocks: int
) -> tuple[torch.Tensor, torch.Tensor]:
    from lsrl.runtime import scan_triton

    return scan_triton.linear_scan_triton(a.to(dtype), b.to(dtype), h0, True, **blocks)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16])
def test_linear_triton_ragged(dtype: torch.dtype) -> None:
    g = torch.Generator().manual_seed(5)
    a = torch.rand(2, 37, 40, generator=g) * 1.2 - 0.1
    b = torch.randn(2, 37, 40, generator=g)
    h0 = torch.randn(2, 40, generator=g)
    out, last = linear_scan(a.to(dtype), b.to(dtype), h0, return_last_state=True, impl="triton")
    ref, ref_last = linear_scan_ref(a.to(dtype).double(), b.to(dtype).double(), h0.double(), True)
    assert out.dtype == dtype and last.dtype == torch.float32
    assert_close_scaled(out, ref, dtype)
    assert_close_scaled(last, ref_last, torch.float32)


@needs_triton
@pytest.mark.parametrize("with_h0", [False, True])
def test_linear_triton_carries_state_across_tiles(with_h0: bool) -> None:
    g = torch.Generator().manual_seed(6)
    a = torch.rand(1, 70, 20, generator=g) * 0.3 + 0.8
    b = torch.randn(1, 70, 20, generator=g)
    h0 = torch.randn(1, 20, generator=g) * 3 if with_h0 else None
    out, last = run_linear_triton(a, b, h0, torch.float32, block_t=8, block_d=16)  # 9 tiles, 2 channel blocks
    ref, ref_last = linear_scan_ref(a.double(), b.double(), None if h0 is None else h0.double(), True)
    assert_close_scaled(out, ref, torch.float32)
    assert_close_scaled(last, ref_last, torch.float32)


@needs_triton
def test_linear_triton_strided_and_broadcast_inputs() -> None:
    g = torch.Generator().manual_seed(7)
    b = torch.randn(2, 19, 24, generator=g).transpose(1, 2)  # (2, 24, 19), channel stride 24, time stride 1
    a = torch.rand(19, generator=g)  # broadcast: stride-0 batch and time
    out = linear_scan(a, b, impl="triton")
    ref = linear_scan_ref(a.expand_as(b).double(), b.double())
    assert_close_scaled(out, ref, torch.float32)


@needs_triton
def test_linear_triton_empty_time_returns_h0() -> None:
    h0 = torch.randn(2, 8)
    out, last = linear_scan(torch.rand(2, 0, 8), torch.randn(2, 0, 8), h0, True, impl="triton")
    assert out.shape == (2, 0, 8)
    torch.testing.assert_close(last, h0)


@needs_triton
def test_selective_triton_ragged_all_features() -> None:
    # L=37, D=40, N=12: ragged in time, channels and states; z gate, D skip, bias, softplus, h0, last state.
    x = make_selective(1, 40, 37, 12, torch.float32, seed=8)
    out, last = selective_scan(**x, delta_softplus=True, return_last_state=True, impl="triton")
    x64 = {k: None if v is None else v.double() for k, v in x.items()}
    ref, ref_last = selective_scan_ref(**x64, delta_softplus=True, return_last_state=True)
    assert out.dtype == torch.float32 and last.dtype == torch.float32
    assert_close_scaled(out, ref, torch.float32)
    assert_close_scaled(last, ref_last, torch.float32)


@needs_triton
def test_selective_triton_plain_multi_tile() -> None:
    # No optional inputs, raw delta (no softplus, no bias): several time tiles and two channel blocks.
    from lsrl.runtime import scan_triton

    x = make_selective(2, 24, 29, 4, torch.float32, seed=9, full=False)
    x["delta"] = x["delta"].abs() * 0.5
    args = [x[k] for k in ("u", "delta", "A", "B", "C")]
    out, last = scan_triton.selective_scan_triton(
        *args, None, None, None, False, None, True, block_t=8, block_d=16
    )
    ref, ref_last = selective_scan_ref(*(t.double() for t in args), return_last_state=True)
    assert_close_scaled(out, ref, torch.float32)
    assert_close_scaled(last, ref_last, torch.float32)


@needs_triton
@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_selective_triton_half_inputs(dtype: torch.dtype) -> None:
    x = make_selective(2, 12, 21, 5, dtype, seed=10)
    out, last = selective_scan(**x, delta_softplus=True, return_last_state=True, impl="triton")
    x64 = {k: None if v is None else v.double() for k, v in x.items()}
    ref, ref_last = selective_scan_ref(**x64, delta_softplus=True, return_last_state=True)
    assert out.dtype == dtype and last.dtype == torch.float32
    assert_close_scaled(out, ref, dtype)
    assert_close_scaled(last, ref_last, torch.float32)


@needs_triton
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.integers(1, 2),
    length=st.integers(1, 24),
    dim=st.integers(1, 12),
    with_h0=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_linear_triton_hypothesis(batch: int, length: int, dim: int, with_h0: bool, seed: int) -> None:
    g = torch.Generator().manual_seed(seed)
    a = torch.rand(batch, length, dim, generator=g) * 2.0 - 1.0
    b = torch.randn(batch, length, dim, generator=g)
    h0 = torch.randn(batch, dim, generator=g) if with_h0 else None
    out, last = linear_scan(a, b, h0, return_last_state=True, impl="triton")
    ref, ref_last = linear_scan_ref(a.double(), b.double(), None if h0 is None else h0.double(), True)
    assert_close_scaled(out, ref, torch.float32)
    assert_close_scaled(last, ref_last, torch.float32)


@needs_triton
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    batch=st.integers(1, 2),
    length=st.integers(1, 20),
    dim=st.integers(1, 10),
    n=st.integers(1, 6),
    full=st.booleans(),
    softplus=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_selective_triton_hypothesis(
    batch: int, length: int, dim: int, n: int, full: bool, softplus: bool, seed: int
) -> None:
    x = make_selective(batch, dim, length, n, torch.float32, seed=seed, full=full)
    if not softplus:
        x["delta"] = x["delta"].abs()
    out, last = selective_scan(**x, delta_softplus=softplus, return_last_state=True, impl="triton")
    x64 = {k: None if v is None else v.double() for k, v in x.items()}
    ref, ref_last = selective_scan_ref(**x64, delta_softplus=softplus, return_last_state=True)
    assert_close_scaled(out, ref, torch.float32)
    assert_close_scaled(last, ref_last, torch.float32)


# ---------------------------------------------------------------------------------------------------
# Dispatch and errors


def test_auto_uses_torch_on_cpu(monkeypatch: pytest.MonkeyPatch) -> None:
    def no_triton() -> None:
        raise AssertionError("auto dispatch must not load the Triton backend for CPU tensors")

    monkeypatch.setattr(scan_mod, "load_triton_backend", no_triton)
    monkeypatch.delenv(scan_mod.IMPL_ENV_VAR, raising=False)
    a, b = torch.rand(1, 4, 3), torch.randn(1, 4, 3)
    torch.testing.assert_close(linear_scan(a, b), linear_scan_ref(a, b))
    assert scan_mod.resolve_impl(None, [a, b]) == "torch"


@needs_triton
def test_env_var_forces_triton(monkeypatch: pytest.MonkeyPatch) -> None:
    from lsrl.runtime import scan_triton

    calls = []
    real = scan_triton.linear_scan_triton
    monkeypatch.setattr(scan_triton, "linear_scan_triton", lambda *a, **k: calls.append(1) or real(*a, **k))
    monkeypatch.setenv(scan_mod.IMPL_ENV_VAR, "triton")
    a, b = torch.rand(1, 5, 4), torch.randn(1, 5, 4)
    out = linear_scan(a, b)
    assert calls == [1]
    assert_close_scaled(out, linear_scan_ref(a.double(), b.double()), torch.float32)
    assert linear_scan(a, b, impl="torch") is not None and calls == [1]  # explicit argument beats env


def test_missing_triton_raises_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "triton", None)  # makes `import triton` raise ImportError
    monkeypatch.delitem(sys.modules, "lsrl.runtime.scan_triton", raising=False)
    monkeypatch.setenv("TRITON_INTERPRET", "1")
    a, b = torch.rand(1, 4, 3), torch.randn(1, 4, 3)
    with pytest.raises(ScanBackendUnavailable, match="pip install"):
        linear_scan(a, b, impl="triton")
    x = make_selective(1, 3, 4, 2, torch.float32, seed=0)
    with pytest.raises(ScanBackendUnavailable, match="triton"):
        selective_scan(**x, impl="triton")
    assert not scan_mod.triton_available()
    assert linear_scan(a, b, impl="auto").shape == b.shape  # the torch path still works


def test_package_imports_without_triton() -> None:
    code = (
        "import sys; sys.modules['triton'] = None\n"
        "import lsrl.runtime, lsrl.runtime.scan as s, torch\n"
        "assert 'lsrl.runtime.scan_triton' not in sys.modules\n"
        "print(s.linear_scan(torch.ones(1, 3, 2), torch.ones(1, 3, 2))[0, -1, 0].item())\n"
    )
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    res = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, timeout=120)
    assert res.returncode == 0, res.stderr
    assert res.stdout.strip() == "3.0"


def test_triton_on_cpu_without_interpreter_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TRITON_INTERPRET", "0")
    with pytest.raises(ScanBackendUnavailable, match="CUDA"):
        linear_scan(torch.rand(1, 2, 2), torch.rand(1, 2, 2), impl="triton")


def test_bad_arguments() -> None:
    a = torch.rand(1, 3, 2)
    with pytest.raises(ValueError, match="impl"):
        linear_scan(a, a, impl="cuda")  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="float64"):
        linear_scan(a.double(), a.double(), impl="triton")
    with pytest.raises(ValueError, match="h0"):
        linear_scan(a, a, torch.zeros(1, 3))
    x = make_selective(1, 3, 4, 2, torch.float32, seed=0)
    with pytest.raises(ValueError, match="B must have shape"):
        selective_scan(**{**x, "B": x["B"][:, :, :2]})
    with pytest.raises(ValueError, match="A must be"):
        selective_scan(**{**x, "A": x["A"][:2]})


# ---------------------------------------------------------------------------------------------------
# Benchmark smoke mode


@needs_triton
def test_bench_smoke_runs(monkeypatch: pytest.MonkeyPatch) -> None:
    spec = importlib.util.spec_from_file_location("bench_scan", ROOT / "bench" / "bench_scan.py")
    bench = importlib.util.module_from_spec(spec)
    monkeypatch.setitem(sys.modules, "bench_scan", bench)  # dataclasses resolve their module by name
    spec.loader.exec_module(bench)
    table = bench.run_smoke()
    assert "| kernel |" in table and "linear_scan" in table and "selective_scan" in table
    assert "frac_bw" in table and "frac_sol" in table
