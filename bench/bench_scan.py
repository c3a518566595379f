"""Benchmark of the Triton scan kernels against the roofline, the torch loop and fla's chunk_hgrn."""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path

# --smoke must turn the interpreter on before anything imports triton.
if "--smoke" in sys.argv:
    os.environ["TRITON_INTERPRET"] = "1"

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from lsrl.runtime.scan import linear_scan, selective_scan  # noqa: E402
from lsrl.runtime.scan_ref import linear_scan_ref, selective_scan_ref  # noqa: E402

# H100 SXM peak figures (per SM per clock) used for the compute floors; see docs/kernels.md.
MUFU_PER_SM_CLK = 16  # ex2/lg2/rcp results
FP32_PER_SM_CLK = 128  # FP32 lanes (an FMA counts as one instruction)
H100_SMS, H100_BOOST_GHZ = 132, 1.98
SEQ_LENS = (512, 1024, 2048, 4096, 8192, 16384, 32768)
DTYPES = {"bf16": torch.bfloat16, "fp16": torch.float16, "fp32": torch.float32}


@dataclass
class Device:
    """What the floors are computed from: measured copy bandwidth and peak issue rates."""

    name: str
    bw_copy: float  # bytes/s, read + write counted
    sms: int = H100_SMS
    clock_hz: float = H100_BOOST_GHZ * 1e9

    @property
    def mufu_rate(self) -> float:
        return MUFU_PER_SM_CLK * self.sms * self.clock_hz

    @property
    def fp32_rate(self) -> float:
        return FP32_PER_SM_CLK * self.sms * self.clock_hz


@dataclass
class Row:
    """One timed configuration and its work counts."""

    kernel: str
    dtype: str
    batch: int
    length: int
    dim: int
    n_state: int
    t_s: float
    bytes_min: float
    n_mufu: float = 0.0
    n_fp32: float = 0.0
    t_torch_s: float | None = None
    torch_note: str = ""
    t_fla_s: float | None = None
    max_err: float | None = None
    extra: dict[str, str] = field(default_factory=dict)

    def floors(self, dev: Device) -> dict[str, float]:
        return {
            "mem": self.bytes_min / dev.bw_copy,
            "exp": self.n_mufu / dev.mufu_rate,
            "fp32": self.n_fp32 / dev.fp32_rate,
        }


def linear_counts(batch: int, length: int, dim: int, elem: int) -> tuple[float, float, float]:
    """Minimal bytes (read a, b; write h), MUFU ops, FP32 instructions (one FMA per step)."""
    n = batch * length * dim
    return 3.0 * elem * n, 0.0, float(n)


def selective_counts(
    batch: int, length: int, dim: int, n_state: int, elem: int
) -> tuple[float, float, float]:
    """Read u, delta, z, B, C; write y (parameters are negligible); exp per state update + 4 per channel step.

    MUFU: exp(dt*A) per (b, t, d, n); softplus exp+log and SiLU exp+rcp per (b, t, d).
    FP32: dt*A, dt*u*B, state FMA, C*h FMA per (b, t, d, n).
    """
    n = batch * length * dim
    bytes_min = 4.0 * elem * n + 2.0 * elem * batch * n_state * length + 3 * 4 * dim * (n_state + 2)
    return bytes_min, float(n * (n_state + 4)), float(4 * n * n_state)


def markdown_table(rows: list[Row], dev: Device, title: str) -> str:
    """Rows as a markdown table with frac_bw, frac_sol and speed-ups."""
    head = (
        "| kernel | dtype | B | L | D | N | time (ms) | GB/s | frac_bw | floors mem/exp/fp32 (ms) | frac_sol "
        "| vs torch loop | vs chunk_hgrn | max err |"
    )
    lines = [f"### {title}", "", f"device: {dev.name}; copy bandwidth {dev.bw_copy / 1e9:.0f} GB/s", "", head]
    lines.append("|" + "---|" * (head.count("|") - 1))
    for r in rows:
        fl = r.floors(dev)
        frac_bw = fl["mem"] / r.t_s
        frac_sol = max(fl.values()) / r.t_s
        torch_x = f"{r.t_torch_s / r.t_s:.3g}x{r.torch_note}" if r.t_torch_s else "n/a"
        fla_x = f"{r.t_fla_s / r.t_s:.3g}x" if r.t_fla_s else "n/a"
        err = f"{r.max_err:.1e}" if r.max_err is not None else "n/a"
        lines.append(
            f"| {r.kernel} | {r.dtype} | {r.batch} | {r.length} | {r.dim} | {r.n_state or '-'} "
            f"| {r.t_s * 1e3:.4g} | {r.bytes_min / r.t_s / 1e9:.0f} | {frac_bw:.2f} "
            f"| {fl['mem'] * 1e3:.3g}/{fl['exp'] * 1e3:.3g}/{fl['fp32'] * 1e3:.3g} | {frac_sol:.2f} "
            f"| {torch_x} | {fla_x} | {err} |"
        )
    return "\n".join(lines) + "\n"


# ---------------------------------------------------------------------------------------------------
# inputs


def linear_inputs(
    batch: int, length: int, dim: int, dtype: torch.dtype, device: str
) -> tuple[torch.Tensor, ...]:
    g = torch.Generator(device=device).manual_seed(0)
    a = torch.sigmoid(torch.randn(batch, length, dim, device=device, generator=g) + 2.0).to(dtype)
    b = torch.randn(batch, length, dim, device=device, generator=g).to(dtype)
    return a, b


def selective_inputs(
    batch: int, length: int, dim: int, n_state: int, dtype: torch.dtype, device: str
) -> dict:
    """Mamba-1 style call: delta pre-activation + bias + softplus, D skip, z gate, A = -(1..N)."""
    g = torch.Generator(device=device).manual_seed(0)

    def rnd(*shape: int) -> torch.Tensor:
        return torch.randn(*shape, device=device, generator=g)

    A = -torch.arange(1, n_state + 1, device=device, dtype=torch.float32).repeat(dim, 1)
    return dict(
        u=rnd(batch, dim, length).to(dtype),
        delta=(rnd(batch, dim, length) * 0.5 - 2.0).to(dtype),
        A=A,
        B=rnd(batch, n_state, length).to(dtype),
        C=rnd(batch, n_state, length).to(dtype),
        D=rnd(dim),
        z=rnd(batch, dim, length).to(dtype),
        delta_bias=rnd(dim) * 0.1,
        delta_softplus=True,
    )


def max_rel_err(out: torch.Tensor, ref: torch.Tensor) -> float:
    return ((out.double() - ref.double()).abs().max() / ref.double().abs().max().clamp_min(1e-30)).item()


# ---------------------------------------------------------------------------------------------------
# GPU mode


def gpu_time(fn: Callable[[], object], rep_ms: int = 200) -> float:
    """Median seconds via triton.testing.do_bench (CUDA events, L2 flushed before every run)."""
    import triton.testing

    return triton.testing.do_bench(fn, warmup=50, rep=rep_ms, return_mode="median") * 1e-3


def measure_copy_bandwidth(nbytes: int = 2 << 30) -> float:
    """Device-to-device copy_ of a 2 GiB bf16 buffer; read + write counted."""
    src = torch.empty(nbytes // 2, dtype=torch.bfloat16, device="cuda").normal_()
    dst = torch.empty_like(src)
    return 2 * nbytes / gpu_time(lambda: dst.copy_(src))


def import_chunk_hgrn() -> Callable | None:
    try:
        from fla.ops.hgrn import chunk_hgrn
    except Exception:  # noqa: BLE001 - any import failure means "not available"
        return None
    return chunk_hgrn


def torch_loop_time(fn: Callable[[], object], length: int, length_run: int) -> tuple[float, str]:
    """Time the torch loop at a shorter length and scale linearly (per-step cost is constant)."""
    t = gpu_time(fn, rep_ms=100)
    note = "" if length_run == length else f" (scaled from L={length_run})"
    return t * length / length_run, note


def bench_linear_gpu(
    batch: int, length: int, dim: int, dtype: str, torch_len: int, hgrn: Callable | None
) -> Row:
    dt = DTYPES[dtype]
    a, b = linear_inputs(batch, length, dim, dt, "cuda")
    t = gpu_time(lambda: linear_scan(a, b, impl="triton"))
    ls = min(length, torch_len)
    t_torch, note = torch_loop_time(lambda: linear_scan_ref(a[:, :ls], b[:, :ls]), length, ls)
    t_fla = None
    if hgrn is not None:
        g = torch.log(a.float()).to(dt)  # chunk_hgrn: h_t = exp(g_t) h_{t-1} + x_t, same (B, T, D) layout
        try:
            t_fla = gpu_time(lambda: hgrn(b, g))
        except Exception as exc:  # noqa: BLE001 - report and keep benchmarking our kernels
            print(f"chunk_hgrn failed at L={length}, {dtype}: {exc}", file=sys.stderr)
    nbytes, nm, nf = linear_counts(batch, length, dim, a.element_size())
    return Row("linear_scan", dtype, batch, length, dim, 0, t, nbytes, nm, nf, t_torch, note, t_fla)


def bench_selective_gpu(batch: int, length: int, dim: int, n_state: int, dtype: str, torch_len: int) -> Row:
    x = selective_inputs(batch, length, dim, n_state, DTYPES[dtype], "cuda")
    t = gpu_time(lambda: selective_scan(**x, impl="triton"))
    ls = min(length, torch_len)
    xs = {k: (v[..., :ls] if k in ("u", "delta", "B", "C", "z") else v) for k, v in x.items()}
    t_torch, note = torch_loop_time(lambda: selective_scan_ref(**xs), length, ls)
    nbytes, nm, nf = selective_counts(batch, length, dim, n_state, x["u"].element_size())
    return Row("selective_scan", dtype, batch, length, dim, n_state, t, nbytes, nm, nf, t_torch, note)


def check_gpu() -> list[str]:
    """Correctness on the GPU before timing: ragged shapes against the fp64 torch loop."""
    out = []
    for dtype, tol in (("fp32", 1e-5), ("bf16", 1e-2)):
        a, b = linear_inputs(2, 1000, 300, DTYPES[dtype], "cuda")
        err = max_rel_err(linear_scan(a, b, impl="triton"), linear_scan_ref(a.double(), b.double()))
        x = selective_inputs(2, 333, 200, 12, DTYPES[dtype], "cuda")
        x64 = {k: v.double() if torch.is_tensor(v) else v for k, v in x.items()}
        err_s = max_rel_err(selective_scan(**x, impl="triton"), selective_scan_ref(**x64))
        status = "ok" if max(err, err_s) < tol else "FAIL"
        out.append(f"check {dtype}: linear {err:.1e}, selective {err_s:.1e} (tol {tol}) {status}")
    return out


def sweep_gpu(batch: int, length: int, dim: int, n_state: int, dtype: str) -> str:
    """Times block configurations around the defaults (for retuning the heuristics)."""
    from lsrl.runtime import scan_triton as st

    dt = DTYPES[dtype]
    a, b = linear_inputs(batch, length, dim, dt, "cuda")
    x = selective_inputs(batch, length, dim, n_state, dt, "cuda")
    args = [x[k] for k in ("u", "delta", "A", "B", "C", "D", "z", "delta_bias")]
    lines = ["| kernel | block_t | block_d | num_warps | time (ms) |", "|---|---|---|---|---|"]
    for bt, bd, nw in itertools.product((8, 16, 32, 64), (32, 64, 128), (1, 2, 4, 8)):
        cfg = dict(block_t=bt, block_d=bd, num_warps=nw)
        t = gpu_time(partial(st.linear_scan_triton, a, b, None, False, **cfg), 100)
        lines.append(f"| linear_scan | {bt} | {bd} | {nw} | {t * 1e3:.4g} |")
    for bt, bd, nw in itertools.product((4, 8, 16, 32), (16, 32, 64), (2, 4, 8)):
        cfg = dict(block_t=bt, block_d=bd, num_warps=nw)
        t = gpu_time(partial(st.selective_scan_triton, *args, True, None, False, **cfg), 100)
        lines.append(f"| selective_scan | {bt} | {bd} | {nw} | {t * 1e3:.4g} |")
    return "\n".join(lines) + "\n"


def run_gpu(args: argparse.Namespace) -> str:
    props = torch.cuda.get_device_properties(0)
    import triton

    dev = Device(
        name=f"{props.name}, torch {torch.__version__}, triton {triton.__version__}",
        bw_copy=measure_copy_bandwidth(),
        sms=props.multi_processor_count,
        clock_hz=args.clock_ghz * 1e9,
    )
    hgrn = import_chunk_hgrn()
    parts = check_gpu()
    rows: list[Row] = []
    for dtype in args.dtypes.split(","):
        for length in args.lengths:
            rows.append(bench_linear_gpu(args.batch, length, args.dim, dtype, args.torch_len, hgrn))
            rows.append(
                bench_selective_gpu(args.batch, length, args.dim, args.n_state, dtype, args.torch_len)
            )
            torch.cuda.empty_cache()
    notes = [
        f"chunk_hgrn: {'fla.ops.hgrn.chunk_hgrn' if hgrn else 'not importable'};",
        f"peaks: {dev.sms} SMs x {args.clock_ghz} GHz, MUFU {MUFU_PER_SM_CLK}/SM/clk, "
        f"FP32 {FP32_PER_SM_CLK}/SM/clk",
    ]
    text = markdown_table(rows, dev, "Scan kernels (GPU)") + "\n" + "\n".join(parts + notes) + "\n"
    if args.sweep:
        text += "\n" + sweep_gpu(args.batch, 4096, args.dim, args.n_state, args.dtypes.split(",")[0])
    return text


# ---------------------------------------------------------------------------------------------------
# CPU smoke mode (TRITON_INTERPRET=1)


def cpu_time(fn: Callable[[], object]) -> float:
    t0 = time.perf_counter()
    fn()
    return time.perf_counter() - t0


def cpu_copy_bandwidth(nbytes: int = 64 << 20) -> float:
    src = torch.ones(nbytes // 4)
    dst = torch.empty_like(src)
    dst.copy_(src)
    return 2 * nbytes / min(cpu_time(lambda: dst.copy_(src)) for _ in range(3))


def run_smoke(batch: int = 1, length: int = 24, dim: int = 20, n_state: int = 4) -> str:
    """Tiny shapes through the interpreter: checks both kernels against fp64 and renders the table."""
    if os.environ.get("TRITON_INTERPRET") != "1":
        raise RuntimeError("smoke mode needs TRITON_INTERPRET=1 set before triton is imported")
    dev = Device(
        name="CPU, Triton interpreter (timings and fractions are not meaningful)",
        bw_copy=cpu_copy_bandwidth(),
    )
    rows = []
    for dtype, tol in (("fp32", 1e-5), ("bf16", 2e-2)):
        dt = DTYPES[dtype]
        a, b = linear_inputs(batch, length, dim, dt, "cpu")
        err = max_rel_err(linear_scan(a, b, impl="triton"), linear_scan_ref(a.double(), b.double()))
        t = cpu_time(lambda: linear_scan(a, b, impl="triton"))  # noqa: B023 - called immediately
        t_torch = cpu_time(lambda: linear_scan_ref(a, b))  # noqa: B023
        nbytes, nm, nf = linear_counts(batch, length, dim, a.element_size())
        rows.append(
            Row("linear_scan", dtype, batch, length, dim, 0, t, nbytes, nm, nf, t_torch, "", None, err)
        )
        x = selective_inputs(batch, length, dim, n_state, dt, "cpu")
        x64 = {k: v.double() if torch.is_tensor(v) else v for k, v in x.items()}
        out = selective_scan(**x, impl="triton")
        t = cpu_time(lambda: selective_scan(**x, impl="triton"))  # noqa: B023
        err_s = max_rel_err(out, selective_scan_ref(**x64))
        t_torch = cpu_time(lambda: selective_scan_ref(**x))  # noqa: B023
        nbytes, nm, nf = selective_counts(batch, length, dim, n_state, x["u"].element_size())
        rows.append(
            Row(
                "selective_scan",
                dtype,
                batch,
                length,
                dim,
                n_state,
                t,
                nbytes,
                nm,
                nf,
                t_torch,
                "",
                None,
                err_s,
            )
        )
        if max(err, err_s) > tol:
            raise AssertionError(f"smoke check failed for {dtype}: errors {err:.2e}, {err_s:.2e} > {tol}")
    return markdown_table(rows, dev, "Scan kernels (CPU smoke, TRITON_INTERPRET=1)")


# ---------------------------------------------------------------------------------------------------
# Static sm_90 check (no GPU needed): registers, spills and loop instructions per state update


def _compile_sm90(kernel: Callable, pointers: dict[str, str], constants: dict[str, object], num_warps: int):
    """Ahead-of-time build for sm_90 with unit channel/time strides specialised, as at launch."""
    import triton
    from triton.backends.compiler import GPUTarget
    from triton.compiler import ASTSource

    sig = {n: "constexpr" if n in constants else pointers.get(n, "i32") for n in kernel.arg_names}
    src = ASTSource(fn=kernel, signature=sig, constexprs=constants)
    return triton.compile(src, target=GPUTarget("cuda", 90, 32), options={"num_warps": num_warps})


def _sass_stats(compiled: object) -> tuple[str, int]:
    """(cuobjdump resource line, instructions in the innermost loop) of a compiled kernel."""
    import re
    import subprocess
    import tempfile

    import triton

    tool = Path(triton.__file__).parent / "backends" / "nvidia" / "bin" / "cuobjdump"
    with tempfile.NamedTemporaryFile(suffix=".cubin") as f:
        f.write(compiled.asm["cubin"])
        f.flush()
        usage = subprocess.run([tool, "--dump-resource-usage", f.name], capture_output=True, text=True).stdout
        sass = subprocess.run([tool, "-sass", f.name], capture_output=True, text=True).stdout
    resources = " ".join(w for w in usage.split() if w.split(":")[0] in ("REG", "STACK"))
    addr = [
        (int(m.group(1), 16), line)
        for line in sass.splitlines()
        if (m := re.search(r"/\*([0-9a-f]{4})\*/", line))
    ]
    loop = (0, -1)
    for pc, line in addr:  # the last backward branch closes the time loop
        if (
            (m := re.search(r"BRA (?:`\(\.L_x_\d+\)|0x([0-9a-f]+))", line))
            and m.group(1)
            and int(m.group(1), 16) < pc
        ):
            loop = (int(m.group(1), 16), pc)
    return resources, sum(1 for pc, _ in addr if loop[0] <= pc <= loop[1])


def static_report(batch: int = 8, length: int = 4096, dim: int = 2048, n_state: int = 16) -> str:
    """Default configs at the benchmark shape, built for sm_90 (132 SMs assumed for the heuristics)."""
    import triton

    from lsrl.runtime import scan_triton as st

    lines = [
        f"### Static sm_90 build (triton {triton.__version__}), B={batch} L={length} D={dim} N={n_state}",
        "",
        "| kernel | dtype | block_t x block_d (x N) / warps | registers | loop instr / update | "
        "issue ceiling on frac_sol |",
        "|---|---|---|---|---|---|",
    ]
    cuda = torch.device("cuda")
    for dtype in ("bf16", "fp32"):
        cfg = st.linear_scan_config(batch, length, dim, cuda, sm_count=H100_SMS)
        ptrs = {n: f"*{dtype}" for n in ("a_ptr", "b_ptr", "out_ptr")} | {
            "h0_ptr": "*fp32",
            "last_ptr": "*fp32",
        }
        consts = dict(HAS_H0=False, STORE_LAST=False, BLOCK_T=cfg.block_t, BLOCK_D=cfg.block_d)
        consts |= dict(s_ad=1, s_bd=1, s_od=1)
        res, n = _sass_stats(_compile_sm90(st._linear_scan_kernel, ptrs, consts, cfg.num_warps))
        per = n * 32 * cfg.num_warps / (cfg.block_t * cfg.block_d)
        shape = f"{cfg.block_t}x{cfg.block_d} / {cfg.num_warps}"
        lines.append(f"| linear_scan | {dtype} | {shape} | {res} | {per:.1f} | - |")
        cfg = st.selective_scan_config(batch, length, dim, n_state, cuda, sm_count=H100_SMS)
        bn = triton.next_power_of_2(n_state)
        ptrs = {n: f"*{dtype}" for n in ("u_ptr", "dt_ptr", "B_ptr", "C_ptr", "z_ptr", "out_ptr")}
        ptrs |= {n: "*fp32" for n in ("A_ptr", "D_ptr", "bias_ptr", "h0_ptr", "last_ptr")}
        consts = dict(HAS_D=True, HAS_Z=True, HAS_BIAS=True, SOFTPLUS=True, HAS_H0=False, STORE_LAST=False)
        consts |= dict(BLOCK_D=cfg.block_d, BLOCK_N=bn, BLOCK_T=cfg.block_t, s_ul=1, s_dl=1, s_bl=1, s_cl=1)
        consts |= dict(s_zl=1, s_ol=1)
        res, n = _sass_stats(_compile_sm90(st._selective_scan_kernel, ptrs, consts, cfg.num_warps))
        per = n * 32 * cfg.num_warps / (cfg.block_t * cfg.block_d * bn)
        # Issue: 128 thread-instructions/clk/SM vs 16 MUFU results: time >= per/128 vs 1/16 per update.
        lines.append(
            f"| selective_scan | {dtype} | {cfg.block_t}x{cfg.block_d}x{bn} / {cfg.num_warps} | {res} "
            f"| {per:.1f} | {min(1.0, 8 / per):.2f} |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--smoke", action="store_true", help="tiny CPU run under TRITON_INTERPRET=1")
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    p.add_argument("--batch", type=int, default=8)
    p.add_argument("--dim", type=int, default=2048)
    p.add_argument("--n-state", type=int, default=16)
    p.add_argument("--lengths", type=int, nargs="+", default=list(SEQ_LENS))
    p.add_argument("--dtypes", default="bf16,fp32", help="comma-separated: bf16, fp16, fp32")
    p.add_argument("--torch-len", type=int, default=256, help="time the torch loop at this L and scale")
    p.add_argument("--clock-ghz", type=float, default=H100_BOOST_GHZ, help="SM clock for the compute floors")
    p.add_argument("--sweep", action="store_true", help="also time block configurations at L=4096")
    p.add_argument("--sass", action="store_true", help="static sm_90 build report (no GPU needed)")
    args = p.parse_args(argv)
    if args.sass:
        text = static_report(args.batch, 4096, args.dim, args.n_state)
    elif args.smoke:
        text = run_smoke()
    elif torch.cuda.is_available():
        text = run_gpu(args)
    else:
        raise SystemExit("no CUDA device: run with --smoke for the CPU interpreter check")
    print(text)
    if args.out:
        args.out.write_text(text)


if __name__ == "__main__":
    main()
