"""The SSM backends (mamba, hawk) against rnn: compile time, parameters, layers, channels, throughput, and
exactness of the compiled models on the device (CPU: the torch scans; CUDA: the Triton kernels, TF32 off).

    python -m bench.bench_ssm [--device cuda] [--batch 16] [--length 1024] [--backends mamba,hawk,rnn] [--out FILE]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch
from lsrl.backends import get_backend

from bench.common import table
from lsrl import interpret, load_program
from lsrl.compiling import CompileOptions, compile_program

ROOT = Path(__file__).resolve().parent.parent
PROGRAMS = [("counter", {}), ("dyck1", {}), ("mod_counter", {}), ("more_ones", {}), ("parity", {}),
            ("running_max", {}), ("tok2tok", {"T": 3}), ("tok2tok", {"T": 8}), ("window_sum", {})]
MAX_LEN = 4096


def _throughput(module, x: torch.Tensor, device: str) -> float:
    """Tokens per second of one forward pass (best of 3, after a warm-up)."""
    with torch.no_grad():
        module(x)
        best = float("inf")
        for _ in range(3):
            if device == "cuda":
                torch.cuda.synchronize()
            t0 = time.perf_counter()
            module(x)
            if device == "cuda":
                torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
    return x.shape[0] * x.shape[1] / best


def _channels(backend: str, cfg: dict) -> int:
    """Units summed over layers (rnn), mixer channels (mamba), or RG-LRU plus MLP channels (hawk)."""
    if backend == "mamba":
        return sum(cfg["inners"])
    if backend == "hawk":
        return sum(cfg["lru"]) + sum(cfg["mlp"])
    return sum(cfg["hiddens"])


def rows(device: str, batch: int, length: int, backends: list[str]) -> list[list[object]]:
    out = []
    for name, params in PROGRAMS:
        prog = load_program(str(ROOT / "programs" / f"{name}.lsrl"), params)
        label = name + "".join(f" {k}={v}" for k, v in params.items())
        x_np = prog.input.sample(np.random.default_rng(0), batch, length)
        want = interpret(prog.reference_graph, x_np).output
        for backend in backends:
            t0 = time.perf_counter()
            c = compile_program(prog, CompileOptions(backend, MAX_LEN, "float32"))
            t_compile = time.perf_counter() - t0
            module = c.module.to(device)
            x = torch.tensor(x_np, dtype=torch.float32, device=device)
            with torch.no_grad():
                got = module(x).double().cpu().numpy()
            err = float(np.abs(got - want).max())
            exact = float(np.mean(np.round(got) == want)) if c.promise().outputs["output"].integer else float("nan")
            layers = len(getattr(module, get_backend(backend).prefix))
            out.append([label, backend, f"{t_compile:.2f}", f"{c.parameter_count():,}", layers,
                        _channels(backend, c.emitted.config), f"{err:.2g}",
                        "-" if exact != exact else f"{100 * exact:.2f}%", f"{_throughput(module, x, device):,.0f}"])
    return out


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    p.add_argument("--batch", type=int, default=16)
    p.add_argument("--length", type=int, default=1024)
    p.add_argument("--backends", default="mamba,hawk,rnn", help="comma-separated (default mamba,hawk,rnn)")
    p.add_argument("--out", type=Path, help="also write the markdown table to this file")
    args = p.parse_args(argv)
    if args.device == "cuda":  # cuDNN convolutions would read 10-bit mantissas under TF32
        torch.backends.cudnn.allow_tf32 = False
        torch.backends.cuda.matmul.allow_tf32 = False
    head = ["program", "backend", "compile s", "parameters", "layers", "units / channels", "max |err|",
            "exact tokens", "tokens/s"]
    text = (f"device {args.device} ({torch.cuda.get_device_name() if args.device == 'cuda' else 'CPU'}), "
            f"float32, max_len {MAX_LEN}, batch {args.batch} x length {args.length}\n\n"
            + table(head, rows(args.device, args.batch, args.length, args.backends.split(","))))
    print(text)
    if args.out:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
